"""Writing files whole or not at all: one helper for every file septool writes.

A file is written to a private temporary name beside its target (mkstemp) and renamed into place
when complete, with the mode a normally created file would have. Any failure of the OS (a full
disk, a read-only or unwritable folder, a parent that is a file) becomes one ``SeptoolError``
naming the target and the reason, and the temporary file is removed whatever happened.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import SeptoolError

DEFAULT_FILENAME = "{track}/{source}.{ext}"  # where `separate` writes each stem, under its output folder
_DEFERRED = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold back SIGTERM and SIGINT while a temporary file is created and handed to the code that
    will remove it: the CLI raises SIGTERM as an exception wherever the program is, and one raised
    between ``mkstemp`` and that hand-over would leave the file behind. A signal that arrives
    meanwhile is raised again, to its own handler, when the block ends.

    The Python handlers are swapped rather than the signals masked: any of torch's threads can
    receive a signal sent to the process, and Python then runs the handler in the main thread
    whatever that thread's mask says. Outside the main thread (where handlers cannot be set and
    Python runs none) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []
    held = {s: signal.signal(s, lambda signum, frame: arrived.append(signum)) for s in _DEFERRED}
    try:
        yield
    finally:
        for held_signal, handler in held.items():
            signal.signal(held_signal, handler)
        for signum in arrived:
            signal.raise_signal(signum)


def usual_mode(path: str | os.PathLike) -> None:
    """Give a temporary file the mode a normally created file would have (0666 less the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(Path(path), 0o666 & ~umask)


def write_failure(path: Path, err: BaseException) -> SeptoolError:
    """One line for a failed write of ``path``: the OS's reason, or 'no space left' when the disk is full."""
    text = str(err).strip()
    reason = getattr(err, "strerror", None) or (text.splitlines()[-1] if text else type(err).__name__)
    try:
        if shutil.disk_usage(_existing(path.parent)).free < 1 << 20:
            reason = "no space left on the device"
    except OSError:
        pass
    return SeptoolError(f"{path}: cannot write ({reason}); nothing was left behind")


def check_writable(folder: str | os.PathLike) -> None:
    """Refuse now, in one line, an output folder that cannot be created or written in; create nothing."""
    folder = Path(folder)
    existing = _existing(folder)
    try:
        if not existing.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, f"{existing} is not a folder")
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise SeptoolError(f"{folder}: cannot write output here ({err.strerror or err})") from None


def _existing(folder: Path) -> Path:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


@contextmanager
def atomic_path(
    path: str | os.PathLike, suffix: str = "", errors: tuple[type[BaseException], ...] = ()
) -> Iterator[Path]:
    """A temporary path to write ``path``'s content to; it becomes ``path`` when the block succeeds.

    ``suffix`` ends the temporary name (``.png`` for a writer that reads the format from it);
    ``errors``: a writing library's own exception types, reported like ``OSError``.
    """
    path = Path(path)
    caught: tuple[type[BaseException], ...] = (OSError, *errors)
    tmp: Path | None = None
    try:
        with signals_deferred():  # the temporary file exists only once the finally below will remove it
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, name = tempfile.mkstemp(prefix=f".{path.name[:64]}.", suffix=f".tmp{suffix}", dir=path.parent)
                os.close(fd)
            except OSError as err:
                raise write_failure(path, err) from None
            tmp = Path(name)
        yield tmp
        usual_mode(tmp)
        os.replace(tmp, path)
    except caught as err:
        raise write_failure(path, err) from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def copy_file(source: str | os.PathLike, path: str | os.PathLike) -> Path:
    with atomic_path(path) as tmp:
        shutil.copyfile(source, tmp)
    return Path(path)


@contextmanager
def atomic_folder(folder: str | os.PathLike, errors: tuple[type[BaseException], ...] = ()) -> Iterator[Path]:
    """A hidden temporary folder beside ``folder``, renamed onto it (replacing it) when the block succeeds."""
    folder = Path(folder)
    caught: tuple[type[BaseException], ...] = (OSError, *errors)
    tmp = folder.parent / f".{folder.name}.tmp"
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        yield tmp
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    except caught as err:
        raise write_failure(folder, err) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
