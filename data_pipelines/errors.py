"""Errors a user can fix (missing or bad data), reported as one line instead of a traceback."""


class DataError(Exception):
    """A data set could not be found or read; the message says what to do."""
