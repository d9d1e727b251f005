"""Command-line entry points and the glue around the models: training, export, generation."""

import os

# Keep TensorFlow's C++ start-up chatter (oneDNN notes, "no CUDA driver") out of a learner's terminal.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
