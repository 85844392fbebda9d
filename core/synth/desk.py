"""The mixing desk: a random processing chain per stem, bus processing and loudness, mixture = sum.

Each stem gets its own chain (EQ, compression, saturation or amp-style distortion, chorus,
tempo-synced delay, reverb from a generated stereo room), each setting drawn from the song's
generator and recorded. Nonlinear processing of the whole mix (glue compression, limiting) is
computed on the sum of the stems and its gain curve is applied to every stem alike, so the
processed stems still add up to the processed mixture; the song's loudness is then set in LUFS
(ITU-R BS.1770, through pyloudnorm) by one gain for all stems.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import maximum_filter1d, uniform_filter1d
from scipy.signal import oaconvolve, sosfilt

RATE = 44100
CONTROL = 32  # samples per step of the compressors' gain computers (0.7 ms)


# --- filters (RBJ audio EQ cookbook biquads) ---------------------------------------------------
def _biquad(kind: str, freq: float, gain_db: float = 0.0, q: float = 0.707) -> np.ndarray:
    w = 2 * np.pi * min(freq, 0.45 * RATE) / RATE
    a, cos, alpha = 10 ** (gain_db / 40), np.cos(w), np.sin(w) / (2 * q)
    if kind == "highpass":
        b = [(1 + cos) / 2, -(1 + cos), (1 + cos) / 2]
        den = [1 + alpha, -2 * cos, 1 - alpha]
    elif kind == "lowpass":
        b = [(1 - cos) / 2, 1 - cos, (1 - cos) / 2]
        den = [1 + alpha, -2 * cos, 1 - alpha]
    elif kind == "peak":
        b = [1 + alpha * a, -2 * cos, 1 - alpha * a]
        den = [1 + alpha / a, -2 * cos, 1 - alpha / a]
    else:  # low or high shelf, slope 1
        sq = 2 * np.sqrt(a) * np.sin(w) / 2 * np.sqrt(2)
        sign = 1 if kind == "lowshelf" else -1
        b = [
            a * ((a + 1) - sign * (a - 1) * cos + sq),
            sign * 2 * a * ((a - 1) - sign * (a + 1) * cos),
            a * ((a + 1) - sign * (a - 1) * cos - sq),
        ]
        den = [(a + 1) + sign * (a - 1) * cos + sq, -sign * 2 * ((a - 1) + sign * (a + 1) * cos),
               (a + 1) + sign * (a - 1) * cos - sq]  # fmt: skip
    return np.array([*b, *den]) / den[0]


def equalize(audio: np.ndarray, bands: list[dict]) -> np.ndarray:
    if not bands:
        return audio
    sos = np.stack([_biquad(b["kind"], b["freq"], b.get("gain_db", 0.0), b.get("q", 0.707)) for b in bands])
    return sosfilt(sos, audio, axis=-1)


# --- dynamics ---------------------------------------------------------------------------------
def compressor_gain(
    audio: np.ndarray, threshold_db: float, ratio: float, attack_ms: float, release_ms: float, knee_db: float = 6.0
) -> np.ndarray:
    """Gain (linear, one value per sample) of a feed-forward peak compressor driven by ``audio``.

    The gain computer runs every ``CONTROL`` samples on the block's peak (both channels), with
    attack and release smoothing in dB; the gain is interpolated back to the sample rate.
    """
    n = audio.shape[-1]
    steps = -(-n // CONTROL)
    peak = np.abs(np.pad(audio, ((0, 0), (0, steps * CONTROL - n)))).max(axis=0).reshape(steps, CONTROL).max(axis=1)
    level = 20 * np.log10(np.maximum(peak, 1e-9))
    over = level - threshold_db
    soft = np.where(
        over > knee_db / 2, over, np.where(over < -knee_db / 2, 0.0, (over + knee_db / 2) ** 2 / (2 * knee_db))
    )
    target = soft * (1 / ratio - 1)  # dB, <= 0
    step_ms = 1000 * CONTROL / RATE
    attack, release = np.exp(-step_ms / attack_ms), np.exp(-step_ms / release_ms)
    smoothed = np.empty(steps)
    state = 0.0
    for i, value in enumerate(target.tolist()):
        coefficient = attack if value < state else release
        state = coefficient * state + (1 - coefficient) * value
        smoothed[i] = state
    centres = (np.arange(steps) + 0.5) * CONTROL
    return 10 ** (np.interp(np.arange(n), centres, smoothed) / 20)


def limiter_gain(audio: np.ndarray, ceiling: float, release_ms: float = 60.0) -> np.ndarray:
    """Gain that keeps ``audio`` under ``ceiling``: look-ahead, a 3 ms attack ramp, smooth release.

    The gain needed at each sample is first spread to the ``hold`` samples either side (a moving
    minimum), released smoothly, then averaged over the same window: every averaged value is at
    most the gain needed at the window's centre, so no peak passes, and the gain never steps.
    """
    hold = int(0.0015 * RATE)
    width = 2 * hold + 1
    peak = maximum_filter1d(np.abs(audio).max(axis=0), size=width, mode="nearest")
    needed = np.minimum(1.0, ceiling / np.maximum(peak, 1e-9))
    n = needed.size
    steps = -(-n // CONTROL)
    blocks = np.pad(needed, (0, steps * CONTROL - n), constant_values=1.0).reshape(steps, CONTROL).min(axis=1)
    release = np.exp(-(1000 * CONTROL / RATE) / release_ms)
    smoothed = np.empty(steps)
    state = 1.0
    for i, value in enumerate(blocks.tolist()):
        state = value if value < state else release * state + (1 - release) * value
        smoothed[i] = state
    held = np.minimum(np.repeat(smoothed, CONTROL)[:n], needed)
    return uniform_filter1d(held, size=width, mode="nearest")


def saturate(audio: np.ndarray, drive_db: float, asymmetry: float) -> np.ndarray:
    """Soft clipping (tanh), slightly asymmetric as a tube stage is, at the input's level."""
    drive = 10 ** (drive_db / 20)
    peak = float(np.abs(audio).max()) or 1.0
    x = audio / peak * drive
    y = np.tanh(x + asymmetry) - np.tanh(asymmetry)
    return y / (float(np.abs(y).max()) or 1.0) * peak


# --- time effects -----------------------------------------------------------------------------
def chorus(audio: np.ndarray, rate_hz: float, depth_ms: float, mix: float) -> np.ndarray:
    n = audio.shape[-1]
    t = np.arange(n)
    out = audio.copy()
    for channel, phase in enumerate((0.0, np.pi / 2)):
        delay = (depth_ms + depth_ms * np.sin(2 * np.pi * rate_hz * t / RATE + phase)) * RATE / 1000 + 0.007 * RATE
        out[channel] += mix * np.interp(t - delay, t, audio[channel], left=0.0)
    return out / (1 + mix)


def delay(audio: np.ndarray, seconds: float, feedback: float, mix: float, echoes: int = 4) -> np.ndarray:
    """Ping-pong echoes, each darker than the last."""
    shift = int(seconds * RATE)
    n = audio.shape[-1]
    wet = np.zeros_like(audio)
    echo = audio
    for k in range(1, echoes + 1):
        echo = equalize(echo, [{"kind": "lowpass", "freq": 6000.0}]) * feedback
        if k * shift >= n:
            break
        side = (k + 1) % 2  # alternate channels
        wet[side, k * shift :] += echo.mean(axis=0)[: n - k * shift]
    return audio + mix * wet


def room_response(rng: np.random.Generator, rt60: float, predelay_ms: float, brightness: float) -> np.ndarray:
    """A stereo room: sparse early reflections, then decorrelated noise decaying faster at high frequencies."""
    length = int(min(rt60 * 1.2, 3.0) * RATE)
    t = np.arange(length) / RATE
    response = np.zeros((2, length))
    bands = [(None, 500.0, 1.0), (500.0, 2500.0, 0.8), (2500.0, None, 0.55 * brightness)]
    for low, high, decay_scale in bands:
        noise = rng.standard_normal((2, length))
        if low is not None:
            noise = equalize(noise, [{"kind": "highpass", "freq": low}])
        if high is not None:
            noise = equalize(noise, [{"kind": "lowpass", "freq": high}])
        response += noise * np.exp(-6.91 * t / (rt60 * decay_scale))  # -60 dB at rt60
    start = int(predelay_ms * RATE / 1000)
    response[:, :start] = 0
    for _ in range(int(rng.integers(4, 10))):  # early reflections
        at = start + int(rng.uniform(0.002, 0.04) * RATE)
        response[:, at] += rng.uniform(-1, 1, 2) * 4
    return response / np.sqrt((response**2).sum(axis=1, keepdims=True))


def reverb(audio: np.ndarray, response: np.ndarray, mix: float) -> np.ndarray:
    wet = np.stack([oaconvolve(audio.mean(axis=0), response[c])[: audio.shape[-1]] for c in range(2)])
    return audio + mix * wet


# --- chains -----------------------------------------------------------------------------------
def draw_chain(rng: np.random.Generator, stem: str, tempo: float, distorted: bool) -> list[dict]:
    """The processing chain of one stem: a list of steps, each a dict of its kind and settings."""
    u = rng.uniform
    low_cut = {"vocals": u(80, 160), "drums": u(25, 45), "bass": u(25, 40), "other": u(60, 180)}.get(stem, u(40, 120))
    bands = [{"kind": "highpass", "freq": low_cut}]
    if stem == "bass":
        bands.append({"kind": "lowshelf", "freq": u(80, 150), "gain_db": u(-2, 5)})
        if rng.random() < 0.6:
            bands.append({"kind": "lowpass", "freq": u(2500, 7000)})
    else:
        bands.append({"kind": "lowshelf", "freq": u(100, 300), "gain_db": u(-4, 3)})
        bands.append({"kind": "highshelf", "freq": u(6000, 11000), "gain_db": u(-3, 5)})
    for _ in range(int(rng.integers(1, 3))):
        bands.append(
            {"kind": "peak", "freq": float(np.exp(u(np.log(200), np.log(6000)))), "gain_db": u(-6, 5), "q": u(0.6, 2.5)}
        )
    chain: list[dict] = [{"kind": "eq", "bands": bands}]
    if stem not in ("vocals", "drums") and (distorted or rng.random() < 0.25):
        chain.append({"kind": "saturate", "drive_db": u(6, 24) if distorted else u(2, 10), "asymmetry": u(0, 0.3)})
        if distorted:  # a cabinet's band
            cabinet = [
                {"kind": "lowpass", "freq": u(3500, 6500)},
                {"kind": "peak", "freq": u(1500, 3000), "gain_db": u(2, 6), "q": 1.0},
            ]
            chain.append({"kind": "eq", "bands": cabinet})
    ranges = {"vocals": (3, 6, 3, 15), "drums": (2, 6, 5, 30), "bass": (3, 8, 2, 20)}
    low_ratio, high_ratio, fast, slow = ranges.get(stem, (2, 4, 5, 30))
    if rng.random() < 0.85:
        chain.append(
            {"kind": "compress", "depth_db": u(3, 12), "ratio": u(low_ratio, high_ratio),
             "attack_ms": u(fast, slow), "release_ms": u(60, 300)}
        )  # fmt: skip
    if stem in ("vocals", "other") and rng.random() < 0.3:
        chain.append({"kind": "chorus", "rate_hz": u(0.3, 1.5), "depth_ms": u(1, 4), "mix": u(0.2, 0.5)})
    if stem in ("vocals", "other") and rng.random() < 0.4:
        beats = float(rng.choice([0.5, 0.75, 1.0]))
        chain.append({"kind": "delay", "seconds": beats * 60 / tempo, "feedback": u(0.2, 0.5), "mix": u(0.1, 0.35)})
    if rng.random() < {"vocals": 0.9, "bass": 0.2}.get(stem, 0.7):
        room = {"rt60": u(0.3, 2.5), "predelay_ms": u(0, 40), "brightness": u(0.6, 1.4)}
        mix = u(0.1, 0.5) if stem != "bass" else u(0.03, 0.12)
        chain.append({"kind": "reverb", **room, "mix": mix, "seed": int(rng.integers(2**31))})
    return [_rounded(step) for step in chain]


def apply_chain(audio: np.ndarray, chain: list[dict]) -> np.ndarray:
    out = audio.astype(np.float64)
    for step in chain:
        kind = step["kind"]
        if kind == "eq":
            out = equalize(out, step["bands"])
        elif kind == "saturate":
            out = saturate(out, step["drive_db"], step["asymmetry"])
        elif kind == "compress":
            peak_db = 20 * np.log10(max(float(np.abs(out).max()), 1e-9))
            gain = compressor_gain(
                out, peak_db - step["depth_db"], step["ratio"], step["attack_ms"], step["release_ms"]
            )
            out = out * gain
        elif kind == "chorus":
            out = chorus(out, step["rate_hz"], step["depth_ms"], step["mix"])
        elif kind == "delay":
            out = delay(out, step["seconds"], step["feedback"], step["mix"])
        elif kind == "reverb":
            room = room_response(
                np.random.default_rng(step["seed"]), step["rt60"], step["predelay_ms"], step["brightness"]
            )
            out = reverb(out, room, step["mix"])
    return out


def draw_bus(rng: np.random.Generator) -> dict:
    """The song's bus: a mix as it leaves the desk, or a gently mastered one.

    Half the songs are left as mixes (``glue`` None: one gain to -20..-14 LUFS, the limiter only
    catching peaks over the ceiling), as MUSDB's mixtures are the plain sums of their stems; the
    other half get light glue compression and -15..-10 LUFS. Driving every song through 2-8 dB of
    glue into a limiter at -14..-8 LUFS cost 0.5 dB of real-music SDR in a probe (docs/data.md,
    probe 5).
    """
    mastered = bool(rng.random() < 0.5)
    glue = None
    if mastered:
        glue = {
            "depth_db": rng.uniform(1, 4),
            "ratio": rng.uniform(1.5, 2.5),
            "attack_ms": rng.uniform(10, 30),
            "release_ms": rng.uniform(100, 400),
        }
    lufs = rng.uniform(-15, -10) if mastered else rng.uniform(-20, -14)
    return _rounded({"glue": glue, "lufs": lufs, "ceiling_db": rng.uniform(-1.0, -0.3)})


def master(stems: dict[str, np.ndarray], bus: dict) -> tuple[dict[str, np.ndarray], dict]:
    """Bus processing computed on the sum and applied to every stem alike; returns stems and what was measured.

    Glue compression (where the bus has it), then one gain to the song's loudness, then a limiter
    to the ceiling: each is a gain curve (or a number) that multiplies every stem, so the stems
    still sum to the master.
    """
    import pyloudnorm

    mix = np.sum(list(stems.values()), axis=0)
    gain: np.ndarray | float = 1.0
    if bus["glue"] is not None:
        peak_db = 20 * np.log10(max(float(np.abs(mix).max()), 1e-9))
        glue = bus["glue"]
        gain = compressor_gain(mix, peak_db - glue["depth_db"], glue["ratio"], glue["attack_ms"], glue["release_ms"])
        mix = mix * gain
    meter = pyloudnorm.Meter(RATE)
    before = meter.integrated_loudness(mix.T)
    loudness_gain = 10 ** ((bus["lufs"] - before) / 20) if np.isfinite(before) else 1.0
    limit = limiter_gain(mix * loudness_gain, 10 ** (bus["ceiling_db"] / 20))
    total = gain * loudness_gain * limit
    out = {name: audio * total for name, audio in stems.items()}
    measured = {
        "loudness_lufs": round(float(meter.integrated_loudness((mix * loudness_gain * limit).T)), 2),
        "limiter_max_reduction_db": round(float(-20 * np.log10(limit.min())), 2),
    }
    return out, measured


def _rounded(value):
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value
