"""The one exception type that septool raises for bad input, with a one-line message."""


class SeptoolError(Exception):
    """A user-facing error: the message names the file or value and what is wrong with it.

    The CLI prints it as a single line and exits non-zero; it is never shown as a traceback.
    """


class SlowPathWarning(UserWarning):
    """A setting that works but runs far slower here than the default would (the CLI prints one
    ``warning:`` line)."""
