"""Reproducible randomness: seeding, deterministic kernels, RNG states as plain data.

* ``seed_everything(seed, rank)`` seeds python, numpy and torch (CPU and CUDA) with ``seed + rank``.
* ``capture_rng_state()`` / ``restore_rng_state()`` turn every global RNG state into tensors and plain numbers, so
  the training-state file stays loadable with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import os
import random
from typing import Any, Dict

import numpy as np
import torch


def seed_everything(seed: int, rank: int = 0, deterministic: bool = False) -> int:
    """Seed python, numpy and torch (+CUDA) with ``seed + rank``; optionally switch to deterministic kernels.

    Returns the seed actually used. ``deterministic`` also sets the cuBLAS workspace variable, which must happen
    before the first CUDA matrix product, so call this before building the model.
    """
    if seed < 0:
        raise ValueError(f"--seed must be >= 0 to seed the run (got {seed}; -1 means not seeded)")
    used = int(seed) + int(rank)
    random.seed(used)
    np.random.seed(used % 2**32)
    torch.manual_seed(used)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(used)
    if deterministic:
        set_deterministic(True)
    return used


def set_deterministic(enabled: bool = True) -> None:
    """Deterministic kernels where PyTorch has them (warn-only where it has none); no cuDNN autotuning."""
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.deterministic = enabled
    if enabled:
        torch.backends.cudnn.benchmark = False


# ---------------------------------------------------------------------------------------------------- RNG state
def capture_rng_state() -> Dict[str, Any]:
    """Every global RNG state (python, numpy, torch CPU, each CUDA device) as tensors and plain numbers."""
    version, mt, gauss = random.getstate()
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state(legacy=True)
    state: Dict[str, Any] = {
        "python": {"version": int(version), "state": torch.tensor(mt, dtype=torch.int64), "gauss": gauss},
        "numpy": {"kind": str(np_kind), "keys": torch.from_numpy(np_keys.astype(np.int64)), "pos": int(np_pos),
                  "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "torch": torch.get_rng_state(),
        "cuda": [s.cpu() for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
    }
    return state


def restore_rng_state(state: Dict[str, Any]) -> None:
    """Put back the RNG states saved by ``capture_rng_state`` (CUDA states only for devices present)."""
    py = state["python"]
    random.setstate((int(py["version"]), tuple(int(x) for x in py["state"].tolist()), py["gauss"]))
    npst = state["numpy"]
    np.random.set_state((npst["kind"], npst["keys"].numpy().astype(np.uint32), int(npst["pos"]),
                         int(npst["has_gauss"]), float(npst["gauss"])))
    torch.set_rng_state(state["torch"].cpu().to(torch.uint8))
    cuda = list(state.get("cuda") or [])
    if cuda and torch.cuda.is_available():
        n = min(len(cuda), torch.cuda.device_count())
        for device in range(n):
            torch.cuda.set_rng_state(cuda[device].cpu().to(torch.uint8), device)
