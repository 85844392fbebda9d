"""Audio in and out: checked block reading, streaming resampling, atomic writing.

Everything streams in blocks so that memory does not grow with a file's length.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from .errors import SeptoolError, argument
from .files import signals_deferred, usual_mode, write_failure
from .mp3frames import layer3_samples

SAMPLE_RATE = 44100
BLOCK = 1 << 16
AUDIO_SUFFIXES = frozenset("." + ext.lower() for ext in sf.available_formats()) | {".oga", ".opus"}
OUTPUT_SUBTYPES = {"16": "PCM_16", "24": "PCM_24", "32f": "FLOAT"}
MP3_SLACK = 4 * 1152  # samples of an MP3's frames beyond what libsndfile reports: its Xing frame, delay, padding
OUTPUT_FORMATS = ("wav", "flac")


@dataclass(frozen=True)
class AudioInfo:
    path: Path
    samplerate: int
    channels: int
    frames: int

    @property
    def duration(self) -> float:
        return self.frames / self.samplerate

    @property
    def frames_at_model_rate(self) -> int:
        return math.ceil(self.frames * SAMPLE_RATE / self.samplerate)


def probe(path: str | os.PathLike) -> AudioInfo:
    """Check that ``path`` is a readable, non-empty mono or stereo audio file."""
    path = Path(path)
    if not path.exists():
        raise SeptoolError(f"{path}: no such file")
    if path.is_dir():
        raise SeptoolError(f"{path}: is a directory, not an audio file")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as err:
        raise SeptoolError(f"{path}: not an audio file soundfile can read ({_reason(err)})") from None
    if info.channels > 2:
        raise SeptoolError(f"{path}: has {info.channels} channels; septool separates mono or stereo audio")
    if info.frames <= 0:
        raise SeptoolError(f"{path}: contains no audio (zero length)")
    missing = _missing_bytes(path)
    if missing:
        raise SeptoolError(f"{path}: truncated: its header announces {missing} more bytes of audio than the file holds")
    frames = _mp3_frames(path, info) if info.format == "MP3" else int(info.frames)
    return AudioInfo(path, int(info.samplerate), int(info.channels), frames)


def _mp3_frames(path: Path, info) -> int:
    """An MP3's length, counted by decoding it: without a Xing tag, libsndfile's header figure is
    an estimate from the first frame. Refused when libsndfile cannot decode all of its frames (a
    variable-bit-rate file without a Xing tag, which it reads only in part)."""
    decoded = 0
    try:
        with sf.SoundFile(str(path)) as handle:  # not sf.blocks, which pads up to the estimate
            while block := len(handle.read(BLOCK, dtype="float32", always_2d=True)):
                decoded += block
    except sf.LibsndfileError as err:
        raise SeptoolError(f"{path}: unreadable ({_reason(err)})") from None
    held, rate = layer3_samples(path), info.samplerate
    if held - decoded > MP3_SLACK:
        raise SeptoolError(
            f"{path}: an MP3 whose header misstates its length (variable bit rate without a Xing header): it "
            f"holds {held / rate:.2f} s, soundfile reads {decoded / rate:.2f} s; convert it to WAV or FLAC first "
            "(ffmpeg -i IN OUT.wav)"
        )
    if decoded <= 0:
        raise SeptoolError(f"{path}: contains no audio (zero length)")
    return decoded


# container magic -> (byte order of chunk sizes, the chunk that holds the samples)
_CONTAINERS: dict[bytes, tuple[Literal["little", "big"], bytes]] = {
    b"RIFF": ("little", b"data"),
    b"FORM": ("big", b"SSND"),
}


def _missing_bytes(path: Path) -> int:
    """For a WAV or AIFF file, how many bytes of its declared sample chunk are absent (0 if none).

    libsndfile reads a cut WAV or AIFF file without complaint, sizing it from what is there; the
    header's chunk size tells what should have been there.
    """
    size = path.stat().st_size
    with open(path, "rb") as handle:
        magic = handle.read(12)[:4]
        if magic not in _CONTAINERS:
            return 0
        order, wanted = _CONTAINERS[magic]
        offset = 12
        while offset + 8 <= size:
            handle.seek(offset)
            chunk, length = handle.read(4), int.from_bytes(handle.read(4), order)
            if chunk == wanted:
                return 0 if length == 0xFFFFFFFF else max(0, offset + 8 + length - size)
            offset += 8 + length + (length & 1)
    return 0


def _reason(err: Exception) -> str:
    text = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
    return text.split(": ", 1)[-1] if text.startswith("Error opening") else text


def read_blocks(info: AudioInfo, block: int = BLOCK) -> Iterator[np.ndarray]:
    """Yield float32 stereo blocks of shape (2, n) at the file's own rate.

    Mono is duplicated to both channels. Non-finite samples and files shorter than their
    header says raise ``SeptoolError`` naming the file.
    """
    seen = 0
    try:
        with sf.SoundFile(str(info.path)) as handle:
            while True:
                data = handle.read(block, dtype="float32", always_2d=True)
                if len(data) == 0:
                    break
                if not np.isfinite(data).all():
                    second = (seen + int(np.argmax(~np.isfinite(data).all(axis=1)))) / info.samplerate
                    raise SeptoolError(f"{info.path}: contains NaN or infinite samples (at {second:.2f} s)")
                seen += len(data)
                data = data.T
                yield np.ascontiguousarray(np.repeat(data, 2, axis=0) if len(data) == 1 else data)
    except sf.LibsndfileError as err:
        raise SeptoolError(f"{info.path}: unreadable after {seen} samples ({_reason(err)})") from None
    if seen != info.frames:
        raise SeptoolError(f"{info.path}: truncated: header says {info.frames} samples, only {seen} could be read")


class StreamResampler:
    """Polyphase resampling of a stream, block by block, equal to resampling the whole signal.

    Each block is filtered with enough context on both sides that the result matches
    ``scipy.signal.resample_poly`` of the complete signal.
    """

    def __init__(self, rate_in: int, rate_out: int, block: int = BLOCK):
        g = math.gcd(rate_in, rate_out)
        self.up, self.down = rate_out // g, rate_in // g
        half_filter_in = 10 * max(self.up, self.down) // self.up + 2
        self.context = math.ceil(half_filter_in / self.down) * self.down
        self.step = max(1, block // self.down) * self.down
        self._buffer = np.zeros((2, 0), dtype=np.float32)
        self._buffer_start = 0  # input index of _buffer[:, 0]
        self._position = 0  # next input index whose output is not emitted yet

    @property
    def identity(self) -> bool:
        return self.up == self.down

    def push(self, block: np.ndarray) -> Iterator[np.ndarray]:
        if self.identity:
            yield block
            return
        self._buffer = np.concatenate([self._buffer, block], axis=1)
        end = self._buffer_start + self._buffer.shape[1]
        while end >= self._position + self.step + self.context:
            yield self._emit(self._position + self.step, self._position + self.step + self.context)

    def flush(self) -> Iterator[np.ndarray]:
        if self.identity:
            return
        end = self._buffer_start + self._buffer.shape[1]
        if end > self._position:
            yield self._emit(end, end)

    def _emit(self, stop: int, read_until: int) -> np.ndarray:
        first = max(0, self._position - self.context)
        segment = self._buffer[:, first - self._buffer_start : read_until - self._buffer_start]
        out = resample_poly(segment, self.up, self.down, axis=1).astype(np.float32)
        lead = (self._position - first) * self.up // self.down
        count = math.ceil((stop - self._position) * self.up / self.down)
        self._position = stop
        keep_from = max(0, stop - self.context)
        self._buffer = self._buffer[:, keep_from - self._buffer_start :]
        self._buffer_start = keep_from
        return out[:, lead : lead + count]


def read_at_model_rate(info: AudioInfo, block: int = BLOCK) -> Iterator[np.ndarray]:
    """Yield the file's audio as (2, n) float32 blocks at ``SAMPLE_RATE``."""
    resampler = StreamResampler(info.samplerate, SAMPLE_RATE, block)
    for data in read_blocks(info, block):
        yield from resampler.push(data)
    yield from resampler.flush()


def load(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read a whole file as a (2, n) float32 array at ``SAMPLE_RATE``, checked like ``probe``."""
    return read_all(probe(path)), SAMPLE_RATE


def read_all(info: AudioInfo) -> np.ndarray:
    """A probed file, whole, as a (2, n) float32 array at ``SAMPLE_RATE``."""
    return np.concatenate(list(read_at_model_rate(info)), axis=1)


def check_output_format(fmt: str, bits: str) -> str:
    """Return the soundfile subtype for ``fmt``/``bits``, or raise a one-line error."""
    if fmt not in OUTPUT_FORMATS:
        raise SeptoolError(f"unknown output format {fmt!r}; choose one of {', '.join(OUTPUT_FORMATS)}")
    if bits not in OUTPUT_SUBTYPES:
        raise SeptoolError(f"unknown bit depth {bits!r}; choose one of {', '.join(OUTPUT_SUBTYPES)}")
    if fmt == "flac" and bits == "32f":
        raise SeptoolError(
            f"FLAC cannot store 32-bit float; use {argument('bits', '16')} or 24, or {argument('fmt', 'wav')}"
        )
    return OUTPUT_SUBTYPES[bits]


class AtomicWriter:
    """Writes audio to a temporary file beside ``path``; ``commit`` renames it into place.

    Samples beyond [-1, 1] are clipped for integer formats and counted in ``clipped``.
    """

    def __init__(self, path: Path, samplerate: int, fmt: str = "wav", bits: str = "16"):
        self.path = Path(path)
        self.subtype = check_output_format(fmt, bits)
        self.clipped = 0
        self.peak = 0.0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # the temporary name carries at most 64 characters of the target's, so a legal name stays legal
        self._file: Any = None  # a soundfile.SoundFile once opened
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name[:64]}.", suffix=".tmp", dir=self.path.parent)
        self._tmp = Path(tmp)
        try:
            os.close(fd)
            self._file = sf.SoundFile(
                tmp, mode="w", samplerate=samplerate, channels=2, format=fmt.upper(), subtype=self.subtype
            )
        except (sf.LibsndfileError, OSError) as err:
            self.abort()
            raise write_failure(self.path, err) from None
        except BaseException:  # Ctrl-C or SIGTERM while opening, where not held back (signals_deferred)
            self.abort()
            raise

    def write(self, block: np.ndarray) -> None:
        """Write a (2, n) float block."""
        if block.shape[1] == 0:
            return
        self.peak = max(self.peak, float(np.abs(block).max()))
        if self.subtype != "FLOAT":
            over = np.abs(block) > 1.0
            if over.any():
                self.clipped += int(over.sum())
                block = np.clip(block, -1.0, 1.0)
        try:
            self._file.write(np.ascontiguousarray(block.T))
        except (sf.LibsndfileError, OSError) as err:
            raise write_failure(self.path, err) from None

    def commit(self) -> Path:
        try:
            self._file.close()
            usual_mode(self._tmp)
            os.replace(self._tmp, self.path)
        except (sf.LibsndfileError, OSError) as err:
            self.abort()
            raise write_failure(self.path, err) from None
        return self.path

    def abort(self) -> None:
        """Close and delete the temporary file (safe to call more than once, or after a failed write)."""
        try:
            if self._file is not None and not self._file.closed:
                self._file.close()
        except (sf.LibsndfileError, OSError):
            pass
        self._tmp.unlink(missing_ok=True)


def write(path: str | os.PathLike, audio: np.ndarray, samplerate: int, fmt: str = "wav", bits: str = "16") -> Path:
    """Write a whole (2, n) array atomically."""
    writer: AtomicWriter | None = None
    try:
        with signals_deferred():  # a signal before the assignment would leave its temporary file
            writer = AtomicWriter(Path(path), samplerate, fmt, bits)
        writer.write(audio)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    return writer.commit()
