"""Every error of the app that a user can act on, and the exit code each one ends a command with.

`app.common.cli.run_command` turns them into one line on stderr; the server's wire-protocol errors
(TF Serving's status codes) are in `app.serving.errors`.
"""

from data_pipelines.errors import DataError

__all__ = ["DataError", "UsageError", "CommandFailed", "TrainingFailed", "Interrupted"]

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """The command cannot do what was asked (bad combination of flags, nothing to resume, ...)."""


class CommandFailed(Exception):
    """The command ran but its work failed (exit code 1); the message says what and where."""


class TrainingFailed(CommandFailed):
    """Training stopped on its own (e.g. the loss became NaN); the message says what was kept."""


class Interrupted(Exception):
    """Ctrl-C or SIGTERM arrived; the message says how to continue."""
