"""Carry a rendered MUSDB-layout database to a machine that cannot render it: stems as Opus.

    python examples/carry_data.py pack   ROOT PACKED [--subset train] [--kbps vocals=20 ...]  # stems -> Opus
    python examples/carry_data.py unpack PACKED ROOT                # there: Opus -> WAV, mixture = sum

Only the four stems travel; each mixture is rebuilt there as the exact sum of the decoded stems,
so mixture and targets stay consistent (the codec's loss is in both). Decoded at 48 kHz and
resampled to 44.1 kHz, trimmed to each song's original length (kept in ``lengths.json``).
Unpacking runs one song per process. Bit rates are per stem: the rendered vocals are band-limited
(festival's 16 kHz voice) and the bass mostly low, so they take fewer bits than drums and the rest.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

STEMS = ("vocals", "drums", "bass", "other")
KBPS = {"vocals": 20, "drums": 32, "bass": 22, "other": 32}


def pack(root: Path, packed: Path, subset: str, kbps: dict[str, int]) -> None:
    lengths = {}
    for song in sorted(p for p in root.glob(f"{subset}/*") if (p / "mixture.wav").exists()):
        name = f"{song.parent.name}/{song.name}"
        lengths[name] = sf.info(song / "mixture.wav").frames
        (packed / name).mkdir(parents=True, exist_ok=True)
        for stem in STEMS:
            out = packed / name / f"{stem}.opus"
            if not out.exists():
                subprocess.run(
                    ["ffmpeg", "-loglevel", "error", "-i", str(song / f"{stem}.wav"), "-c:a", "libopus",
                     "-b:a", f"{kbps[stem]}k", "-vbr", "on", str(out)], check=True,
                )  # fmt: skip
    (packed / "lengths.json").write_text(json.dumps(lengths, indent=0))


def _unpack_song(job: tuple[Path, Path, int]) -> str:
    folder, out, length = job
    stems = {}
    for stem in STEMS:
        audio, rate = sf.read(folder / f"{stem}.opus", dtype="float32", always_2d=True)
        audio = resample_poly(audio, 147, 160, axis=0) if rate == 48000 else audio
        stems[stem] = np.pad(audio[:length], ((0, max(0, length - len(audio))), (0, 0)))
    peak = max(float(np.abs(sum(stems.values())).max()), max(float(np.abs(s).max()) for s in stems.values()))
    scale = min(1.0, 0.99 / max(peak, 1e-9))  # the codec may overshoot: scale the whole song, keep the sum exact
    quantized = {s: np.round(a * scale * 32767).astype(np.int16) for s, a in stems.items()}
    mixture = sum(q.astype(np.int32) for q in quantized.values())
    out.mkdir(parents=True, exist_ok=True)
    for stem, q in quantized.items():
        sf.write(out / f"{stem}.wav", q, 44100, subtype="PCM_16")
    sf.write(out / "mixture.wav", np.clip(mixture, -32768, 32767).astype(np.int16), 44100, subtype="PCM_16")
    return out.name


def unpack(packed: Path, root: Path, jobs: int | None) -> None:
    lengths = json.loads((packed / "lengths.json").read_text())
    work = [(packed / name, root / name, length) for name, length in lengths.items()]
    with ProcessPoolExecutor(jobs) as pool:
        done = list(pool.map(_unpack_song, work))
    print(f"unpacked {len(done)} songs into {root}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["pack", "unpack"])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--subset", default="train", help="pack: which subset folder")
    parser.add_argument("--kbps", action="append", default=[], help=f"STEM=KBPS (defaults {KBPS})")
    parser.add_argument("--jobs", type=int, default=None)
    args = parser.parse_args()
    if args.action == "pack":
        rates = KBPS | {k: int(v) for k, v in (item.split("=") for item in args.kbps)}
        pack(args.source, args.target, args.subset, rates)
    else:
        unpack(args.source, args.target, args.jobs)


if __name__ == "__main__":
    main()
