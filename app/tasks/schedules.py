"""Learning-rate schedules the tasks share (the cosine one is Keras's own)."""

import keras


class LinearWarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Rise linearly to ``peak`` over ``warmup_steps``, then fall linearly to 0 at ``total_steps`` (BERT's schedule)."""

    def __init__(self, peak: float, warmup_steps: int, total_steps: int):
        self.peak, self.warmup_steps, self.total_steps = peak, max(1, warmup_steps), max(2, total_steps)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        warmup = step / self.warmup_steps
        decay = (self.total_steps - step) / (self.total_steps - self.warmup_steps)
        return self.peak * keras.ops.maximum(0.0, keras.ops.minimum(warmup, decay))

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps}
