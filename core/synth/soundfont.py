"""Finding soundfonts and reading their preset tables (SF2 and SF3 share the RIFF layout)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from ..errors import SeptoolError

# Debian packages: fluid-soundfont-gm, timgm6mb-soundfont, musescore-general-soundfont,
# avldrums.lv2-soundfont (drum kits only).
SEARCH_DIRS = (Path("/usr/share/sounds/sf2"), Path("/usr/share/sounds/sf3"), Path("/usr/share/soundfonts"))


@dataclass(frozen=True)
class Preset:
    bank: int
    program: int
    name: str


@dataclass(frozen=True)
class SoundFont:
    path: Path
    presets: tuple[Preset, ...]

    @property
    def melodic(self) -> set[int]:
        return {p.program for p in self.presets if p.bank == 0}

    @property
    def drum_kits(self) -> list[Preset]:
        """Bank-128 kits of a GM soundfont, or the single kit of a drum-only soundfont."""
        kits = [p for p in self.presets if p.bank == 128]
        return kits or ([self.presets[0]] if self.drums_only else [])

    @property
    def drums_only(self) -> bool:
        return len(self.presets) <= 4 and not any(p.bank == 128 for p in self.presets)


def read_presets(path: Path) -> tuple[Preset, ...]:
    """The preset headers ('phdr') of a SoundFont file; a truncated or damaged one is refused in one line."""
    try:
        return _read_presets(path)
    except (struct.error, UnicodeDecodeError, OSError) as err:
        raise SeptoolError(f"{path}: not a readable SoundFont (truncated or damaged: {err})") from None


def _read_presets(path: Path) -> tuple[Preset, ...]:
    with open(path, "rb") as handle:
        head = handle.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"sfbk":
            raise SeptoolError(f"{path}: not a SoundFont (SF2/SF3) file")
        while True:
            header = handle.read(8)
            if len(header) < 8:
                break
            kind, size = header[:4], struct.unpack("<I", header[4:])[0]
            if kind == b"LIST" and handle.read(4) == b"pdta":
                end = handle.tell() + size - 4
                while handle.tell() < end:
                    sub, sub_size = struct.unpack("<4sI", handle.read(8))
                    if sub == b"phdr":
                        raw = handle.read(sub_size)
                        presets = []
                        for i in range(0, sub_size - 38, 38):  # the last record is a terminator
                            name, program, bank = struct.unpack("<20sHH", raw[i : i + 24])
                            presets.append(Preset(bank, program, name.split(b"\0")[0].decode("latin-1")))
                        return tuple(presets)
                    handle.seek(sub_size + (sub_size & 1), 1)
            elif kind != b"LIST":
                handle.seek(size + (size & 1), 1)
            else:
                handle.seek(size - 4 + (size & 1), 1)
    raise SeptoolError(f"{path}: SoundFont has no preset table")


def load_soundfont(path: str | Path) -> SoundFont:
    path = Path(path)
    if not path.is_file():
        raise SeptoolError(f"{path}: no such soundfont")
    return SoundFont(path, read_presets(path))


def installed_soundfonts() -> list[Path]:
    """SoundFont files of the Debian packages present on this machine (symlinks resolved, unique)."""
    found: dict[Path, None] = {}
    for folder in SEARCH_DIRS:
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                if path.suffix.lower() in (".sf2", ".sf3") and path.exists():
                    found.setdefault(path.resolve(), None)
    return list(found)
