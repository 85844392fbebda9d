"""Separate a WAV file with a septool ONNX export, using numpy, soundfile and onnxruntime only.

    septool export -o septool.onnx --dynamic-batch
    python examples/onnx_separate.py septool.onnx song.wav out/

The whole contract of the exported graph, written out as a C++ or mobile port would follow it:
44.1 kHz stereo is cut into patches of 65 536 samples overlapping by a quarter; each patch goes
through a centred STFT (2048-point periodic Hann window, hop 512, reflection padding), giving
129 frames; bins 0..1023 of the magnitude are divided by ``bin_std`` (from the file's metadata)
and fed to the graph; each output times ``bin_std`` is a source's magnitude, which takes the
mixture's phase (and a Nyquist bin scaled from bin 1023); the inverse STFT gives the patch back,
and patches are blended with triangular weights. septool's own separator does the same (and
streams, resamples and post-filters); this script holds a whole file in memory.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnxruntime
import soundfile as sf

N_FFT, HOP, BINS, PATCH = 2048, 512, 1024, 65536
WINDOW = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)  # periodic Hann, as torch.hann_window


def stft(audio: np.ndarray) -> np.ndarray:
    """(channels, PATCH) -> (channels, 1025, 129) complex, centred with reflection."""
    padded = np.pad(audio, ((0, 0), (N_FFT // 2, N_FFT // 2)), mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT, axis=1)[:, ::HOP]
    return np.fft.rfft(frames * WINDOW, axis=-1).transpose(0, 2, 1)


def istft(spec: np.ndarray, length: int) -> np.ndarray:
    """The inverse of ``stft``: windowed overlap-add divided by the summed squared window."""
    frames = np.fft.irfft(spec.transpose(0, 2, 1), n=N_FFT, axis=-1) * WINDOW
    total = N_FFT + HOP * (frames.shape[1] - 1)
    out = np.zeros((spec.shape[0], total))
    norm = np.zeros(total)
    for t in range(frames.shape[1]):
        out[:, t * HOP : t * HOP + N_FFT] += frames[:, t]
        norm[t * HOP : t * HOP + N_FFT] += WINDOW**2
    return (out / np.maximum(norm, 1e-11))[:, N_FFT // 2 : N_FFT // 2 + length]


def separate_patch(session, bin_std: np.ndarray, sources: list[str], patch: np.ndarray) -> dict[str, np.ndarray]:
    spec = stft(patch)
    magnitude = np.abs(spec[:, :BINS])
    normalized = (magnitude / bin_std)[None].astype(np.float32)
    outputs = session.run(sources, {"normalized": normalized})
    phase = spec[:, :BINS] / np.maximum(magnitude, np.finfo(np.float32).tiny)
    stems = {}
    for source, estimate in zip(sources, outputs):
        estimate = estimate[0] * bin_std
        top = np.clip(estimate[:, -1:] / (magnitude[:, -1:] + 1e-8), 0.0, 1.0)
        full = np.concatenate([estimate * phase, spec[:, BINS:] * top], axis=1)
        stems[source] = istft(full, PATCH)
    return stems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="an ONNX file written by `septool export`")
    parser.add_argument("audio", type=Path, help="a 44.1 kHz WAV file (mono or stereo)")
    parser.add_argument("out", type=Path, help="folder for <source>.wav")
    parser.add_argument("--overlap", type=float, default=0.25)
    args = parser.parse_args()

    session = onnxruntime.InferenceSession(str(args.model), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    sources, bin_std = json.loads(meta["sources"]), np.asarray(json.loads(meta["bin_std"]))[:, None]
    audio, rate = sf.read(args.audio, dtype="float32", always_2d=True)
    if rate != 44100:
        raise SystemExit(f"{args.audio}: {rate} Hz; this script reads 44.1 kHz (septool separate resamples)")
    audio = np.repeat(audio, 2, axis=1) if audio.shape[1] == 1 else audio[:, :2]
    audio = audio.T.astype(np.float64)
    length = audio.shape[1]
    stride = max(1, round(PATCH * (1 - args.overlap)))
    count = 1 if length <= PATCH else int(np.ceil((length - PATCH) / stride)) + 1
    t = np.arange(PATCH)
    window = np.minimum(t + 1, PATCH - t) / (PATCH / 2)  # triangular, never zero
    total = (count - 1) * stride + PATCH
    stems = {s: np.zeros((2, total)) for s in sources}
    weight = np.zeros(total)
    for k in range(count):
        patch = np.zeros((2, PATCH))
        piece = audio[:, k * stride : k * stride + PATCH]
        patch[:, : piece.shape[1]] = piece
        for source, estimate in separate_patch(session, bin_std, sources, patch).items():
            stems[source][:, k * stride : k * stride + PATCH] += estimate * window
        weight[k * stride : k * stride + PATCH] += window
    args.out.mkdir(parents=True, exist_ok=True)
    for source, stem in stems.items():
        sf.write(args.out / f"{source}.wav", (stem / weight)[:, :length].T.astype(np.float32), rate, subtype="FLOAT")
    print(f"wrote {', '.join(f'{s}.wav' for s in sources)} to {args.out}")


if __name__ == "__main__":
    main()
