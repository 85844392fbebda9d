"""BSSEval v4 in memory that does not grow with the track: museval's figures, computed in blocks.

BSSEval v4 (SiSEC 2018; ``museval.metrics.bss_eval`` with ``framewise_filters=False``, images
version) fits one set of distortion filters to the whole track: least squares of each estimate on
the references delayed by 0 to 511 samples. museval forms the inner products behind it from FFTs
of whole tracks (2^24 points a channel for 3.5 minutes) and needs about 5.5 GB for one MUSDB song.
The inner products are sums over time, so here they are accumulated one block at a time (each
block's cross-spectrum summed in the frequency domain, one inverse FFT at the end). museval then
projects each window's references on its own, without the samples before it, so the second pass
is one window at a time too. Peak memory: the Gram matrix of the delayed references
((sources x channels x 512)^2 float64: 134 MB for four stereo sources) and a few blocks.

The decomposition and the four ratios follow museval's code line for line; the result equals
museval's to rounding (tested against museval itself).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.fft
from scipy.linalg import toeplitz

FILTERS_LEN = 512
BLOCK_FFT = 1 << 16  # samples per FFT of the first pass: a block and its 511-sample history


@dataclass(frozen=True)
class Ratios:
    """Per-source, per-window ratios in dB, each (sources, windows); NaN where a window has a
    silent reference or estimate (museval's convention)."""

    sdr: np.ndarray
    isr: np.ndarray
    sir: np.ndarray
    sar: np.ndarray


def windows(length: int, window: int, hop: int) -> list[slice]:
    """museval's framing: whole windows only (a trailing partial window is dropped), or the whole
    signal as one window when it is shorter than ``window``."""
    if window >= length:
        return [slice(0, length)]
    count = (length - window + hop) // hop
    return [slice(t * hop, min(t * hop + window, length)) for t in range(count)]


def bss_eval_v4(
    references: Sequence[np.ndarray], estimates: Sequence[np.ndarray], *,
    window: int = 44100, hop: int = 44100, filters_len: int = FILTERS_LEN,
) -> Ratios:  # fmt: skip
    """SDR, ISR, SIR and SAR of ``estimates[j]`` against ``references[j]``, all sources jointly.

    Each signal is (channels, samples), every one the same shape; any float dtype (computed in
    float64)."""
    shapes = {np.shape(a) for a in (*references, *estimates)}
    if len(references) != len(estimates) or len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"references and estimates must be as many arrays of one (channels, samples) shape: {shapes}")
    n_src = len(references)
    n_chan, length = references[0].shape
    gram, cross = _correlations(references, estimates, filters_len)
    joint, own = _distortion_filters(gram, cross, n_src, n_chan, filters_len)
    frames = windows(length, window, hop)
    out = np.full((4, n_src, len(frames)), np.nan)
    longest = max(f.stop - f.start for f in frames)
    n_fft = scipy.fft.next_fast_len(longest + filters_len - 1, real=True)
    joint_f = scipy.fft.rfft(joint, n=n_fft, axis=2)  # (ref channel, estimate channel, freq)
    own_f = scipy.fft.rfft(own, n=n_fft, axis=3)  # (source, ref channel, estimate channel, freq)
    for t, frame in enumerate(frames):
        refs = np.stack([np.asarray(r[:, frame], dtype=np.float64) for r in references])
        ests = np.stack([np.asarray(e[:, frame], dtype=np.float64) for e in estimates])
        if _any_silent(refs) or _any_silent(ests):
            continue
        out[:, :, t] = _window_ratios(refs, ests, joint_f, own_f, n_fft, filters_len)
    return Ratios(*out)


def _any_silent(signals: np.ndarray) -> bool:
    """museval's test: a source whose channels sum to zero at every sample."""
    return bool(np.any(np.all(signals.sum(axis=1) == 0, axis=1)))


def _correlations(
    references: Sequence[np.ndarray], estimates: Sequence[np.ndarray], filters_len: int
) -> tuple[np.ndarray, np.ndarray]:
    """``h[p, q, a] = sum_n ref_p[n - a] x_q[n]`` for every reference channel p, every channel q of
    the references then of the estimates, and lags 0 <= a < filters_len; split into the
    references' part (p, p', a) and the estimates' part (p, q, a)."""
    refs = [np.asarray(r) for r in references]
    signals = refs + [np.asarray(e) for e in estimates]
    n_chan, length = refs[0].shape
    history = filters_len - 1
    block = BLOCK_FFT - history
    spectra = np.zeros((len(refs) * n_chan, len(signals) * n_chan, BLOCK_FFT // 2 + 1), dtype=np.complex128)
    for start in range(0, length, block):
        stop = min(start + block, length)
        current = np.concatenate([s[:, start:stop] for s in signals]).astype(np.float64)
        past = np.zeros((len(refs) * n_chan, stop - start + history))
        begin = max(start - history, 0)
        past[:, begin - (start - history) :] = np.concatenate([r[:, begin:stop] for r in refs])
        past_f = scipy.fft.rfft(past, n=BLOCK_FFT, axis=1)
        current_f = scipy.fft.rfft(current, n=BLOCK_FFT, axis=1)
        spectra += past_f[:, None, :] * np.conj(current_f)[None, :, :]
    # circular correlation at lag m = history - a: sum_k past[k + m] current[k], no wrap-around
    lags = scipy.fft.irfft(spectra, n=BLOCK_FFT, axis=2)[:, :, history::-1]
    n_ref = len(refs) * n_chan
    return lags[:, :n_ref], lags[:, n_ref:]


def _distortion_filters(
    gram_lags: np.ndarray, cross: np.ndarray, n_src: int, n_chan: int, filters_len: int
) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares filters of each estimate channel on all delayed references (``joint``: ref
    channel, estimate channel, lag) and on its own source's (``own``: source, ref channel of that
    source, estimate channel, lag), as museval solves them (G + eps I, lstsq if singular)."""
    n_ref = n_src * n_chan
    size = n_ref * filters_len
    gram = np.empty((size, size))
    for p in range(n_ref):
        for q in range(n_ref):
            # <ref_p delayed a, ref_q delayed b> = h[p, q, a - b] for a >= b, h[q, p, b - a] below
            gram[p * filters_len : (p + 1) * filters_len, q * filters_len : (q + 1) * filters_len] = toeplitz(
                gram_lags[p, q], gram_lags[q, p]
            )
    rhs = cross.transpose(0, 2, 1).reshape(size, -1)  # rows (ref channel, lag), columns estimate channels
    eps = np.finfo(float).eps
    joint = _solve(gram, rhs, eps).reshape(n_ref, filters_len, -1).transpose(0, 2, 1)
    own = np.empty((n_src, n_chan, n_chan, filters_len))
    for j in range(n_src):
        rows = slice(j * n_chan * filters_len, (j + 1) * n_chan * filters_len)
        columns = slice(j * n_chan, (j + 1) * n_chan)
        solved = _solve(gram[rows, rows], rhs[rows, columns], eps)
        own[j] = solved.reshape(n_chan, filters_len, n_chan).transpose(0, 2, 1)
    return joint, own


def _solve(gram: np.ndarray, rhs: np.ndarray, eps: float) -> np.ndarray:
    try:
        return np.linalg.solve(gram + eps * np.eye(gram.shape[0]), rhs)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(gram, rhs, rcond=None)[0]


def _window_ratios(
    refs: np.ndarray, ests: np.ndarray, joint_f: np.ndarray, own_f: np.ndarray, n_fft: int, filters_len: int
) -> np.ndarray:
    """museval's ``_bss_decomp_mtifilt`` and ``_bss_crit`` for every source of one window."""
    n_src, n_chan, width = refs.shape
    padded = width + filters_len - 1
    refs_f = scipy.fft.rfft(refs, n=n_fft, axis=2)  # (source, channel, freq)
    flat_f = refs_f.reshape(n_src * n_chan, -1)
    all_projected = scipy.fft.irfft(np.einsum("pf,pqf->qf", flat_f, joint_f), n=n_fft)[:, :padded]
    own_projected = scipy.fft.irfft(np.einsum("jcf,jcdf->jdf", refs_f, own_f), n=n_fft)[..., :padded]
    ratios = np.empty((4, n_src))
    for j in range(n_src):
        s_true = np.zeros((n_chan, padded))
        s_true[:, :width] = refs[j]
        e_spat = own_projected[j] - s_true
        e_interf = all_projected[j * n_chan : (j + 1) * n_chan] - s_true - e_spat
        e_artif = -s_true - e_spat - e_interf
        e_artif[:, :width] += ests[j]
        energy = np.sum(s_true**2)
        ratios[:, j] = (
            _db(energy, np.sum((e_spat + e_interf + e_artif) ** 2)),
            _db(energy, np.sum(e_spat**2)),
            _db(np.sum((s_true + e_spat) ** 2), np.sum(e_interf**2)),
            _db(np.sum((s_true + e_spat + e_interf) ** 2), np.sum(e_artif**2)),
        )
    return ratios


def _db(num: float, den: float) -> float:
    if den == 0:
        return np.inf
    with np.errstate(divide="ignore"):
        return float(10 * np.log10(num / den))
