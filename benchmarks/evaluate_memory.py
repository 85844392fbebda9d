"""Peak memory and time of `septool evaluate` on a MUSDB-sized test set (50 tracks of 3 to 4 minutes).

MUSDB18's test set cannot be downloaded here, so the tracks are built from rendered songs of
MUSDB's length (`septool synth DIR --layout musdb --subset test --song-seconds 180,240`): track k
is song k mod n, every stem and the mixture turned by the same k-dependent number of seconds, so
no two tracks are the same. Memory does not depend on what the music is, only on its shape.

Runs `septool evaluate --data TRACKS -j J` with the shipped model as a child process and samples the
resident memory of it and all its workers together twice a second; prints the peak of that sum,
the largest single process (the kernel's own peak, ru_maxrss) and the time.
Run: python benchmarks/evaluate_memory.py SONGS_DIR --work DIR [--tracks 50] [--jobs 1]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

FILES = ("mixture", "vocals", "drums", "bass", "other")
TURN_SECONDS = 23.0


def build_tracks(songs: list[Path], out: Path, count: int) -> None:
    """``count`` track folders under ``out/test``, each a turned copy of one rendered song."""
    for k in range(count):
        track = out / "test" / f"track_{k:03d}"
        if (track / "other.wav").exists():
            continue
        track.mkdir(parents=True, exist_ok=True)
        song = songs[k % len(songs)]
        for name in FILES:
            audio, rate = sf.read(song / f"{name}.wav", dtype="int16")
            turned = np.roll(audio, int((k // len(songs)) * TURN_SECONDS * rate), axis=0)
            sf.write(track / f"{name}.wav", turned, rate, subtype="PCM_16")


def tree_rss_mb(root: int) -> float:
    """Resident memory of ``root`` and every process below it, in MB."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process has gone
            continue
        pid = int(stat.parent.name)
        parents[pid], rss[pid] = int(fields[1]), int(fields[21])
    tree, grew = {root}, True
    while grew:
        below = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= below
        grew = bool(below)
    page = resource.getpagesize()
    return sum(rss.get(pid, 0) for pid in tree) * page / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("songs", type=Path, help="a musdb-layout folder of rendered songs (its test/ subset)")
    parser.add_argument("--work", type=Path, required=True, help="where the tracks and results go")
    parser.add_argument("--tracks", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args()
    songs = sorted(p for p in (args.songs / "test").iterdir() if (p / "other.wav").exists())
    if not songs:
        sys.exit(f"{args.songs}: no rendered songs under test/")
    build_tracks(songs, args.work / "tracks", args.tracks)
    tracks = sorted((args.work / "tracks" / "test").iterdir())[: args.tracks]
    seconds = [sf.info(track / "mixture.wav").duration for track in tracks]
    command = ["septool", "evaluate", "--data", str(args.work / "tracks"), "-o", str(args.work / "results"),
               "-j", str(args.jobs)]  # fmt: skip
    start = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    peak = 0.0
    while process.poll() is None:
        peak = max(peak, tree_rss_mb(process.pid))
        time.sleep(0.5)
    elapsed = time.monotonic() - start
    if process.returncode != 0:
        sys.exit(f"septool evaluate failed with exit status {process.returncode}")
    largest = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e3
    print(f"{args.tracks} tracks from {len(songs)} rendered songs, {min(seconds):.0f} to {max(seconds):.0f} s each "
          f"({sum(seconds) / 60:.0f} min in all), -j {args.jobs}")  # fmt: skip
    print(f"peak resident memory, process and workers together: {peak:.0f} MB (sampled every 0.5 s)")
    print(f"largest single process (ru_maxrss): {largest:.0f} MB; time {elapsed / 60:.1f} min")


if __name__ == "__main__":
    main()
