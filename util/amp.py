"""Mixed precision for ``--amp {none,bf16,fp16}``: autocast contexts, the fp16 GradScaler, scaled backward/step.

``none`` keeps the official fp32 numerics. ``bf16`` runs convolutions in bfloat16 under ``torch.autocast`` on the
CPU or a GPU (same exponent range as fp32, so no loss scaling). ``fp16`` is CUDA only and keeps a
``torch.amp.GradScaler`` (the model's ``grad_scaler``) so small gradients do not flush to zero.
"""
from __future__ import annotations

import contextlib
from functools import lru_cache
from typing import Any, ContextManager, FrozenSet, Optional

import torch

AMP_MODES = ("none", "bf16", "fp16")

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_amp(mode: str, device: torch.device) -> None:
    """Raise ValueError naming ``--amp`` for an unknown mode, or fp16 on a device without CUDA."""
    if mode not in AMP_MODES:
        raise ValueError(f"--amp '{mode}' is not valid; choose one of: {', '.join(AMP_MODES)}")
    if mode == "fp16" and torch.device(device).type != "cuda":
        raise ValueError(f"--amp fp16 needs a CUDA device (this run uses {device}); use --amp bf16 on the CPU")


def amp_dtype(mode: str) -> Optional[torch.dtype]:
    """The autocast dtype of ``mode`` (None for ``none``)."""
    return _DTYPES.get(mode)


def autocast(mode: str, device: torch.device) -> ContextManager:
    """``torch.autocast`` for ``mode`` on ``device``'s type; a no-op context for ``none``."""
    dtype = amp_dtype(mode)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def weight_cache_scope(mode: str, device: torch.device) -> ContextManager:
    """Under ``--amp``: one region around a training step in which autocast keeps its low-precision copies of the
    weights, so a network called three times in a step (CycleGAN's G_A: fake, reconstruction, identity) casts its
    weights once. It is a disabled autocast context: autocast clears its cache only on leaving the outermost one.
    Whatever changes weights in place must call ``clear_weight_cache`` (models/step_control.py does after a step)."""
    if amp_dtype(mode) is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, enabled=False)


def clear_weight_cache() -> None:
    """Drop autocast's cast copies of the weights (after an optimizer changed them in place)."""
    torch.clear_autocast_cache()


def to_float(value: Any) -> Any:
    """A bf16/fp16 tensor as float32 (autocast outputs, for losses, pools and images); anything else unchanged."""
    if isinstance(value, torch.Tensor) and value.dtype in (torch.bfloat16, torch.float16):
        return value.float()
    return value


def make_grad_scaler(mode: str, device: torch.device) -> Optional[torch.amp.GradScaler]:
    """A GradScaler for fp16 on CUDA; None otherwise (bf16 and fp32 need no loss scaling)."""
    if mode == "fp16" and torch.device(device).type == "cuda":
        return torch.amp.GradScaler("cuda")
    return None


@lru_cache(maxsize=None)
def cpu_flags(path: str = "/proc/cpuinfo") -> FrozenSet[str]:
    """The feature flags of the first processor listed in ``path`` (Linux; empty where it cannot be read)."""
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):  # x86, ARM
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def has_amx_bf16() -> bool:
    """Whether the CPU has AMX tiles for bf16 (Intel Sapphire Rapids and later), which oneDNN's bf16 kernels use;
    PyTorch's public interface does not say (``torch.backends.cpu.get_cpu_capability()`` stops at AVX512)."""
    return "amx_bf16" in cpu_flags()
