"""The one exception type that septool raises for bad input, with a one-line message."""

from __future__ import annotations

import re
from collections.abc import Callable

_ARGUMENT = re.compile("\0([a-z_]+)(?:\1([^\0]*))?\0")


def argument(name: str, value: object = None) -> str:
    """How a message names a caller's argument (and the value to give it): written ``musdb=`` or
    ``encoder='frozen'`` for a Python caller, and as the command line's flag (``--musdb``,
    ``--encoder frozen``) by the CLI (``SeptoolError.naming``). The core never names a flag."""
    return f"\0{name}\0" if value is None else f"\0{name}\1{value}\0"


def _python(match: re.Match) -> str:
    name, value = match[1], match[2]
    if value is None:
        return f"{name}="
    return f"{name}={value}" if value in ("True", "False") else f"{name}={value!r}"


class SeptoolError(Exception):
    """A user-facing error: the message names the file or value and what is wrong with it.

    The CLI prints it as a single line and exits non-zero; it is never shown as a traceback.
    Arguments named in it (``argument``) read as keywords here and as flags on the command line.
    """

    def __str__(self) -> str:
        return _ARGUMENT.sub(_python, super().__str__())

    def naming(self, flag: Callable[[str], str]) -> str:
        """The message with each argument named by ``flag(name)`` (the CLI's option for it)."""

        def cli(match: re.Match) -> str:
            name, value = match[1], match[2]
            return flag(name) if value in (None, "True") else f"{flag(name)} {value}"

        return _ARGUMENT.sub(cli, super().__str__())


class SlowPathWarning(UserWarning):
    """A setting that works but runs far slower here than the default would (the CLI prints one
    ``warning:`` line)."""
