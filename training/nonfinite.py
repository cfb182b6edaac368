"""The non-finite loss rule (``--nan_policy``): detect NaN/Inf after each step, never save them over a checkpoint.

* ``stop`` (default): the first non-finite loss raises ``NonFiniteLossError`` naming the losses, the epoch and
  the iteration. Nothing is saved after it, so the checkpoints on disk are those of the last save before it.
* ``skip``: an optimizer step whose gradients are not all finite is not applied (a step pre-hook drops the
  gradients, so Adam leaves weights and moments untouched); BatchNorm running statistics (and counters) go back
  to their values after the last finite iteration; non-finite images are removed from the image pools; a warning names
  the iteration. After ``MAX_CONSECUTIVE_SKIPS`` non-finite iterations in a row the run
  stops as under ``stop``: the model is not recovering.

The check costs one small reduction and one device sync per iteration (the loss scalars are already computed);
with several processes one more one-element all-reduce, so that every process stops or skips alike.
Before every save ``assert_finite_networks`` checks the weights themselves, whatever the policy.
"""
from __future__ import annotations

import math
from typing import Any, Callable, List, Tuple

import torch

from options.train_options import NAN_POLICIES
from util.distributed import any_process
from util.logger import get_logger
from util.ranges import Choice

log = get_logger(__name__)

MAX_CONSECUTIVE_SKIPS = 100


class NonFiniteLossError(RuntimeError):
    """A loss, gradient or weight became NaN or infinite."""


def loss_values(model: Any) -> List[Tuple[str, Any]]:
    """(name, value) of every ``loss_<name>`` attribute listed in ``model.loss_names`` (tensors or numbers)."""
    return [(name, getattr(model, "loss_" + name)) for name in model.loss_names if hasattr(model, "loss_" + name)]


def losses_finite(model: Any) -> bool:
    """True when every current loss is finite (one fused check and one sync for the tensor losses)."""
    tensors = []
    for _, value in loss_values(model):
        if isinstance(value, torch.Tensor):
            tensors.append(value.detach().float().reshape(-1))
        elif not math.isfinite(float(value)):
            return False
    if not tensors:
        return True
    devices = {t.device for t in tensors}
    if len(devices) > 1:
        tensors = [t.cpu() for t in tensors]
    return bool(torch.isfinite(torch.cat(tensors)).all())


def describe_losses(model: Any) -> str:
    """``D_A=nan, G_A=1.234`` for the non-finite losses (all losses if none is)."""
    values = [(name, float(v.detach().float().reshape(-1)[0]) if isinstance(v, torch.Tensor) else float(v))
              for name, v in loss_values(model)]
    bad = [(n, v) for n, v in values if not math.isfinite(v)]
    return ", ".join(f"{n}={v}" for n, v in (bad or values))


def purge_pools(model: Any) -> int:
    """Remove non-finite images from every image pool of ``model``; return how many were removed."""
    removed = 0
    for value in getattr(model, "image_pools", {}).values():
        if value.images:
            keep = [img for img in value.images if bool(torch.isfinite(img).all())]
            removed += len(value.images) - len(keep)
            value.images = keep
            value.num_imgs = len(keep)
    return removed


def assert_finite_networks(model: Any) -> None:
    """Raise ``NonFiniteLossError`` naming the network when a parameter or buffer is NaN/Inf (called before saving)."""
    for name in model.model_names:
        net = getattr(model, "net" + name)
        for key, tensor in net.state_dict().items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise NonFiniteLossError(f"network {name} has non-finite values ({key}); not saving it over the "
                                         f"checkpoints on disk")


class NonFiniteGuard:
    """Applies ``--nan_policy`` after each iteration; under ``skip`` it also hooks every optimizer's step."""

    def __init__(self, model: Any, policy: str = "stop", max_consecutive: int = MAX_CONSECUTIVE_SKIPS) -> None:
        Choice(NAN_POLICIES).check("--nan_policy", policy)  # a guard built without the options parser
        self.model = model
        self.policy = policy
        self.max_consecutive = max_consecutive
        self.skipped_steps = 0  # optimizer steps not applied (skip policy)
        self.bad_iterations = 0
        self.consecutive = 0
        self._dropped_since_check = 0
        self._handles: List[Any] = []
        self._buffers: List[torch.Tensor] = []
        self._good_buffers: List[torch.Tensor] = []
        if policy == "skip":
            for optimizer in getattr(model, "optimizers", []):
                self._handles.append(optimizer.register_step_pre_hook(self._make_hook()))
            # buffers (BatchNorm running statistics and counters) change in the forward pass, before any step:
            # keep the last good values to put back (small; InstanceNorm networks have none)
            self._buffers = [b for name in model.model_names for b in getattr(model, "net" + name).buffers()]
            self._good_buffers = [b.detach().clone() for b in self._buffers]

    def _make_hook(self) -> Callable[..., None]:
        """A step pre-hook that drops all gradients of the optimizer when one of them is not finite."""
        def hook(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
            grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
            if not grads:
                return None
            norms = torch._foreach_norm(grads)
            if bool(torch.isfinite(torch.stack([n.float().to(norms[0].device) for n in norms])).all()):
                return None
            for group in optimizer.param_groups:
                for p in group["params"]:
                    p.grad = None
            self.skipped_steps += 1
            self._dropped_since_check += 1
            return None
        return hook

    def check(self, epoch: int, total_iters: int) -> None:
        """Apply the policy to the losses of the step just taken (``total_iters`` as printed in the loss lines)."""
        dropped, self._dropped_since_check = self._dropped_since_check, 0
        finite_here = losses_finite(self.model)
        # with several processes all of them take the same decision (else the others wait in their next all-reduce)
        if not any_process(not finite_here or bool(dropped)):
            self.consecutive = 0
            if self._buffers:
                torch._foreach_copy_(self._good_buffers, self._buffers)
            return
        self.bad_iterations += 1
        self.consecutive += 1
        where = f"epoch {epoch}, iters {total_iters}"
        if not finite_here:
            what = f"non-finite loss ({describe_losses(self.model)})"
        elif dropped:
            what = "non-finite gradients"
        else:
            what = "non-finite loss in another process"
        if self.policy == "stop":
            raise NonFiniteLossError(f"{what} at {where}: stopping (--nan_policy stop); the checkpoints on disk are "
                                     f"from before this step. Lower --lr, check the data, or pass --nan_policy skip")
        if self._buffers:
            torch._foreach_copy_(self._buffers, self._good_buffers)
        removed = purge_pools(self.model)
        extra = f"; {removed} non-finite image(s) removed from the image pools" if removed else ""
        log.warning("%s at %s: optimizer step(s) skipped (--nan_policy skip)%s", what, where, extra)
        if self.consecutive >= self.max_consecutive:
            raise NonFiniteLossError(f"{what} for {self.consecutive} iterations in a row (last at {where}): the run is "
                                     f"not recovering; stopping. Lower --lr or check the data")

    def close(self) -> None:
        """Remove the optimizer hooks."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
