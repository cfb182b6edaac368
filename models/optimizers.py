"""The models' optimizer: ``torch.optim.Adam`` in its fused kernel, with its state created before the first step.

* ``make_adam``: ``torch.optim.Adam(fused=True)`` on the CPU and CUDA (one pass over the parameters, no
  temporaries); PyTorch has these kernels on both devices from 2.4 on, the lowest release this project supports
  (requirements.txt). Elsewhere (e.g. MPS) the ``foreach`` implementation, PyTorch's default on GPUs.
* ``allocate_adam_state``: Adam creates its moments lazily inside the first step, where they land in between that
  step's activations and gradients; creating them up front keeps the long-lived state together
  (docs/performance.md has the measured effect).

tests/test_optimizers.py checks both against a plain ``torch.optim.Adam`` bit for bit.
"""
from __future__ import annotations

from typing import Iterable

import torch
import torch.nn as nn

# Devices with a fused Adam kernel in every PyTorch release the project supports (>= 2.4).
FUSED_ADAM_DEVICES = ("cpu", "cuda")


def make_adam(params: Iterable[nn.Parameter], lr: float, betas: tuple, device: torch.device) -> torch.optim.Adam:
    """``torch.optim.Adam`` in the fused kernel for floating-point parameters on CPU/CUDA, ``foreach`` otherwise."""
    params = list(params)
    if torch.device(device).type in FUSED_ADAM_DEVICES and all(p.is_floating_point() for p in params):
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
    return torch.optim.Adam(params, lr=lr, betas=betas, foreach=True)


def allocate_adam_state(optimizer: torch.optim.Optimizer) -> int:
    """Create Adam's per-parameter state now (step 0, zero moments), the state its first ``step`` would create.

    Allocated before any step, the long-lived state sits together instead of in the holes between the first
    step's activations and gradients, which the allocator can neither give back nor fully reuse. It goes in through
    the public resume path: a state dict in the format of Adam's checkpoints, read by ``load_state_dict``. The
    moments are ``zeros_like`` each parameter (its dtype, device and memory format); the step counter is given as
    the number 0, so that PyTorch itself picks its tensor's dtype and device (as for a checkpoint from a release
    that stored plain numbers). Parameters that already have state (a restored optimizer), frozen parameters and
    ``differentiable`` groups are left alone; other optimizers are not touched. Returns the number initialised.
    """
    if not isinstance(optimizer, torch.optim.Adam):
        return 0
    state_dict = optimizer.state_dict()
    count = 0
    for group, saved in zip(optimizer.param_groups, state_dict["param_groups"]):
        if group.get("differentiable"):
            continue
        for p, index in zip(group["params"], saved["params"]):
            if state_dict["state"].get(index) or not p.requires_grad:
                continue
            state = {"step": 0.0, "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                     "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}
            if group.get("amsgrad"):
                state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state_dict["state"][index] = state
            count += 1
    if count:
        optimizer.load_state_dict(state_dict)
    return count


def match_state_layout(optimizer: torch.optim.Optimizer) -> int:
    """Give every per-parameter state tensor of ``optimizer`` its parameter's memory layout (strides), in place.

    A restored state keeps the layout it was saved with, which differs from the parameters' when a run is resumed
    with another ``--channels_last`` (or its default changed). The fused Adam kernel assumes equal layouts and
    otherwise updates with the moments of the wrong elements, silently (seen in PyTorch 2.14 on the CPU); the
    other kernels are unaffected. Values are unchanged. Returns the number of tensors converted.
    """
    count = 0
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = optimizer.state.get(p, {})
            for key, value in state.items():
                if isinstance(value, torch.Tensor) and value.shape == p.shape and value.stride() != p.stride():
                    state[key] = torch.empty_like(p, dtype=value.dtype).copy_(value)
                    count += 1
    return count
