"""TensorFlow's native start-up chatter kept out of a learner's terminal.

Since TensorFlow 2.16 the C++ runtime writes its first notes ("oneDNN custom operations are on",
"Could not find cuda drivers") straight to the process's stderr before its logging is set up, so
``TF_CPP_MIN_LOG_LEVEL`` cannot silence them. A command that must import TensorFlow before it can
check its flags (`app.train`, whose flags come from the task classes) imports it inside
`native_stderr_captured`: the notes are dropped, and shown only if the import itself fails.
"""

from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager


@contextmanager
def native_stderr_captured():
    """Send file descriptor 2 (native code's stderr) to a scratch file for the block; replay it if the block raises."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as scratch:
        os.dup2(scratch.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            scratch.seek(0)
            sys.stderr.write(scratch.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
