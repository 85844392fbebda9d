"""Render examples/audio/demo.ogg: 20 s of a song from `septool synth`, the README's example.

The full song and its reference stems come back with the same call (seed 2026, one song, the
soundfonts named below), so anyone can score separations of the demo against its stems.
Run: python examples/make_demo_audio.py
"""

from pathlib import Path

import numpy as np
import soundfile as sf

from septool.synth import synthesize

SEED = 2026
SOUNDFONTS = ["/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/TimGM6mb.sf2"]
START, SECONDS = 8.0, 20.0


def main() -> None:
    out = Path(__file__).parent / "audio"
    work = out / "demo_song"
    result = synthesize(work, hours=0.001, seed=SEED, soundfonts=SOUNDFONTS, song_seconds=(40.0, 40.0))
    folder = work / "train" / result.songs[0]["name"]
    mixture, rate = sf.read(folder / "mixture.wav", dtype="float32")
    excerpt = mixture[int(START * rate) : int((START + SECONDS) * rate)]
    fade = np.minimum(1.0, np.minimum(np.arange(len(excerpt)), np.arange(len(excerpt))[::-1]) / (0.05 * rate))
    sf.write(out / "demo.ogg", excerpt * fade[:, None], rate, format="OGG", subtype="VORBIS")
    print(f"wrote {out / 'demo.ogg'} from {folder} ({(out / 'demo.ogg').stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
