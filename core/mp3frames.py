"""How much audio an MP3 file holds, counted from its frame headers.

libsndfile sizes an MP3 from its first frame (or a Xing/Info tag). A variable-bit-rate file
without such a tag is therefore misread: it reports, and decodes, only part of the audio. Walking
the frame headers gives the true length without decoding.
"""

from __future__ import annotations

import mmap
from pathlib import Path

# Layer III bit rates in kbit/s by index: MPEG-1, and MPEG-2 / 2.5
_BITRATES = {
    1: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}  # by version bits


def _id3_size(data) -> int:
    """The bytes of a leading ID3v2 tag (0 if none)."""
    if data[:3] != b"ID3" or len(data) < 10:
        return 0
    size = (data[6] << 21) | (data[7] << 14) | (data[8] << 7) | data[9]
    return 10 + size + (10 if data[5] & 0x10 else 0)


def layer3_samples(path: str | Path) -> int:
    """Samples per channel in the consecutive MPEG Layer III frames at the start of ``path``
    (after an ID3v2 tag), encoder delay and padding included; 0 when it holds none."""
    with open(path, "rb") as handle:
        if Path(path).stat().st_size < 4:
            return 0
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            position, samples = _id3_size(data), 0
            while position + 4 <= len(data):
                header = int.from_bytes(data[position : position + 4], "big")
                version, layer = (header >> 19) & 3, (header >> 17) & 3
                bitrate, rate, padding = (header >> 12) & 15, (header >> 10) & 3, (header >> 9) & 1
                if header >> 21 != 0x7FF or version == 1 or layer != 1 or bitrate in (0, 15) or rate == 3:
                    break
                per_frame = 1152 if version == 3 else 576
                kbps = _BITRATES[1 if version == 3 else 2][bitrate]
                samples += per_frame
                position += per_frame // 8 * kbps * 1000 // _RATES[version][rate] + padding
            return samples
