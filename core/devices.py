"""Where a model runs and in what precision: the devices and bf16 rule shared by separation and training."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from .errors import SeptoolError, SlowPathWarning


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda[:N]`` or ``mps``, refused with a clear error when not available here."""
    kind = name.split(":")[0]
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available(),
    }
    if kind not in available:
        raise SeptoolError(f"unknown device {name!r}; choose cpu, cuda or mps")
    if not available[kind]:
        raise SeptoolError(f"device {name!r} is not available on this machine")
    index = name[len(kind) + 1 :] if ":" in name else None
    if index is not None and (kind == "cpu" or not index.isdigit()):
        raise SeptoolError(f"bad device {name!r}; write cpu, cuda, cuda:N or mps")
    if index is not None and int(index) >= torch.cuda.device_count():
        raise SeptoolError(f"device {name!r} is not available: this machine has {torch.cuda.device_count()} GPU(s)")
    return torch.device(name)


def fast_bf16(device: torch.device) -> bool:
    """Whether bf16 is the faster path here: CUDA, or a CPU with AMX or AVX-512 bf16 instructions
    that torch and oneDNN may use (``ATEN_CPU_CAPABILITY`` or ``ONEDNN_MAX_CPU_ISA`` set below
    AVX-512 rule them out, as on an AVX2-only CPU).

    Elsewhere bf16 on CPU is emulated and slower than fp32.
    """
    if device.type == "cuda":
        return True
    if device.type != "cpu":
        return False
    if torch.backends.cpu.get_cpu_capability() != "AVX512":
        return False
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL").upper()
    if isa != "ALL" and "AVX512" not in isa and "AMX" not in isa:
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> str:
    """``fp32`` or ``bf16``; ``auto`` is bf16 where it is the fast path (separation and training alike)."""
    if precision not in ("auto", "fp32", "bf16"):
        raise SeptoolError(f"unknown precision {precision!r}; choose auto, fp32 or bf16")
    if precision == "auto":
        return "bf16" if fast_bf16(device) else "fp32"
    if precision == "bf16" and device.type == "cpu" and not fast_bf16(device):
        warnings.warn(
            "bf16 is emulated on this CPU (it has neither AMX nor AVX-512 bf16 instructions) and runs several "
            "times slower than fp32; precision auto chooses fp32 here",
            SlowPathWarning,
            stacklevel=2,
        )
    return precision
