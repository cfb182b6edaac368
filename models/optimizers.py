"""The models' optimizer: torch.optim.Adam in its fused kernel, lean on memory (docs/performance.md).

Two things about ``torch.optim.Adam`` cost resident memory without changing a single number:

* its ``step`` (and ``add_param_group``, ``zero_grad``, ``state_dict``, ``load_state_dict``) import
  ``torch._dynamo`` on first use, only to mark themselves as not traceable by ``torch.compile``. That import pulls
  in sympy, triton and the inductor: about 150 MB of RSS here, in every training process. ``Adam`` below runs the
  same methods, unwrapped from those markers, so training never imports ``torch._dynamo`` (``--compile`` still
  does; it compiles the networks, never the optimizer). Hooks, LR schedulers and state dicts work as for
  ``torch.optim.Adam``, of which it is a subclass;
* Adam creates its moments lazily inside the first step, where they land in between that step's activations and
  gradients; ``allocate_adam_state`` creates them up front instead (about 45 MB less peak RSS for pix2pix at 256²).

tests/test_optimizers.py checks both against ``torch.optim.Adam`` bit for bit.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Iterable, Optional

import torch
import torch.nn as nn
from torch.optim.optimizer import Optimizer


def _unwrapped(fn: Callable) -> Callable:
    """``fn`` without its decorators (they all use functools.wraps, which records ``__wrapped__``)."""
    return inspect.unwrap(fn)


_ADAM_STEP = _unwrapped(torch.optim.Adam.step)
_ADD_PARAM_GROUP = _unwrapped(Optimizer.add_param_group)
_ZERO_GRAD = _unwrapped(Optimizer.zero_grad)
_STATE_DICT = _unwrapped(Optimizer.state_dict)
_LOAD_STATE_DICT = _unwrapped(Optimizer.load_state_dict)


class Adam(torch.optim.Adam):
    """``torch.optim.Adam`` that does not import ``torch._dynamo`` (same updates, state and hooks)."""

    @torch.no_grad()
    def step(self, closure: Optional[Callable[[], Any]] = None) -> Any:
        """One Adam update of every parameter with a gradient (``torch.optim.Adam.step`` without its compile
        markers; it runs under no_grad as Adam's own wrapper arranges for a non-differentiable optimizer)."""
        return _ADAM_STEP(self, closure)

    def add_param_group(self, param_group: dict) -> None:
        """Add a parameter group (``Optimizer.add_param_group``)."""
        _ADD_PARAM_GROUP(self, param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients (``Optimizer.zero_grad``)."""
        _ZERO_GRAD(self, set_to_none)

    def state_dict(self) -> dict:
        """The optimizer state as a dict (``Optimizer.state_dict``; the same format as torch.optim.Adam's)."""
        return _STATE_DICT(self)

    def load_state_dict(self, state_dict: dict) -> None:
        """Load a state saved by this class or by ``torch.optim.Adam`` (``Optimizer.load_state_dict``)."""
        _LOAD_STATE_DICT(self, state_dict)


def make_adam(params: Iterable[nn.Parameter], lr: float, betas: tuple, device: torch.device) -> torch.optim.Adam:
    """Adam with the fused kernel where PyTorch has one (CPU, CUDA): one pass, no temporaries (foreach otherwise)."""
    params = list(params)
    if torch.device(device).type in ("cpu", "cuda") and all(p.is_floating_point() for p in params):
        return Adam(params, lr=lr, betas=betas, fused=True)
    return Adam(params, lr=lr, betas=betas, foreach=True)


def allocate_adam_state(optimizer: torch.optim.Optimizer) -> int:
    """Create Adam's per-parameter state now (step 0, zero moments), exactly as its first ``step`` would.

    Allocated before any step, the long-lived state sits together instead of in the holes between the first
    step's activations and gradients, which the allocator can neither give back nor fully reuse. Values, dtypes,
    devices and memory formats are those of ``torch.optim.Adam._init_group``. Parameters that already have state
    (a restored optimizer) are left alone; other optimizers are not touched. Returns the number initialised.
    """
    if not isinstance(optimizer, torch.optim.Adam):
        return 0
    count = 0
    for group in optimizer.param_groups:
        if group.get("differentiable"):
            continue
        for p in group["params"]:
            state = optimizer.state[p]
            if len(state) or not p.requires_grad:
                continue
            if group.get("fused"):
                step = torch.zeros((), dtype=torch.float32, device=p.device)
            elif group.get("capturable"):
                step = torch.zeros((), dtype=_scalar_dtype(), device=p.device)
            else:
                step = torch.tensor(0.0, dtype=_scalar_dtype(), device="cpu")
            state["step"] = step
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            if group.get("amsgrad"):
                state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            count += 1
    return count


def _scalar_dtype() -> torch.dtype:
    """The dtype torch.optim keeps a non-fused ``step`` counter in (float64 only under a float64 default dtype)."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
