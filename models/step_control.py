"""What the framework does around a model's plain training step, so that the model file need not.

A model writes its step as its paper does: ``forward``, then per network group ``zero_grad()``, ``backward()``,
``step()``. Its optimizers are ``ManagedOptimizer``s (``BaseModel.make_optimizer``, or any ``torch.optim``
optimizer the model creates itself, wrapped by ``BaseModel.setup``), which consult the model's ``StepControl``:

* ``--accum_steps k``: ``zero_grad`` clears only at the first batch of a group of k, ``step`` applies only at the
  last one, to the summed gradients divided by k (the mean over the group, as one batch k times larger).
* ``--d_steps n``: ``BaseModel.train_step`` runs the model's ``optimize_parameters`` on every n-th group and a
  discriminator-only step (forward without gradients, ``backward_D``, step) on the others.
* ``--amp fp16``: the optimizer steps through the ``GradScaler`` (the gradients were scaled where they entered
  each network, models/wrappers.py), and ``train_step`` updates the scale once per applied step.
* Stepping inside backward: an optimizer made with ``single_backward=True`` (the model states that its parameters
  each receive their gradient from one ``backward()`` per step, e.g. pix2pix's G) applies the update to each
  parameter as soon as its gradient is final and frees that gradient, so the network's gradients never all exist
  at once. The numbers are those of one step after backward (Adam's update is per parameter). It is off when
  something watches the steps (a step hook), under ``--accum_steps``, loss scaling or several processes; a step in
  which a parameter gets a second gradient is an error, never a partial update. (It is declared, not learned from a
  first step: the first step would then set the peak memory it is meant to lower, and per-parameter updates cost
  time where the gradients are small, e.g. a discriminator's.)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

import torch

from util import amp


@dataclass(frozen=True)
class StepPlan:
    """What one training batch does under ``--accum_steps`` and ``--d_steps``."""

    first: bool  # first batch of an accumulation group: clear the gradients
    last: bool  # last batch of the group: apply the optimizers
    update_G: bool  # this group runs the model's whole step (else a discriminator-only step)


class StepControl:
    """The accumulation position, the discriminator-only schedule and the fp16 loss scaler of one model."""

    def __init__(self, accum_steps: int = 1, d_steps: int = 1, scaler: Optional[Any] = None,
                 world_size: int = 1) -> None:
        self.accum_steps = max(1, int(accum_steps))
        self.d_steps = max(1, int(d_steps))
        self.scaler = scaler
        self.world_size = world_size
        self.micro_step = 0  # training batches so far (saved with the training state)
        self.plan = StepPlan(first=True, last=True, update_G=True)  # outside train_step: plain steps

    def begin(self) -> StepPlan:
        """Advance to the next batch and return its plan."""
        i = self.micro_step
        self.micro_step += 1
        pos, group = i % self.accum_steps, i // self.accum_steps
        self.plan = StepPlan(first=pos == 0, last=pos == self.accum_steps - 1,
                             update_G=group % self.d_steps == self.d_steps - 1)
        return self.plan

    def end(self) -> None:
        """After the batch: update the fp16 loss scale once per applied step; later calls are plain steps."""
        if self.plan.last and self.scaler is not None:
            self.scaler.update()
        self.plan = StepPlan(first=True, last=True, update_G=True)

    def may_step_in_backward(self) -> bool:
        """Whether the current batch's updates may be applied inside backward."""
        return self.accum_steps == 1 and self.scaler is None and self.world_size <= 1


class StepInBackwardError(RuntimeError):
    """A parameter received a second gradient in a step that was being applied inside backward."""


class ManagedOptimizer:
    """A ``torch.optim`` optimizer whose ``zero_grad``/``step`` follow the model's ``StepControl``.

    Everything else (``param_groups``, ``state_dict``, hooks, ...) is the wrapped optimizer's, reachable as
    ``.optimizer`` (LR schedulers and checkpoints use it directly).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, control: StepControl, in_backward: bool = False) -> None:
        self.optimizer = optimizer
        self.control = control
        self.watch_handles: List[Any] = []  # step hooks registered through this wrapper
        self.in_backward = in_backward  # the model's word: one backward per step, so updates may go inside it
        self._handles: List[Any] = []
        self._counts: Dict[int, int] = {}

    def __getattr__(self, name: str) -> Any:
        if name == "optimizer":  # not yet set (copy/pickle): no recursion
            raise AttributeError(name)
        return getattr(self.optimizer, name)

    def __repr__(self) -> str:
        return f"ManagedOptimizer({self.optimizer!r})"

    # ------------------------------------------------------------------ watched steps
    def register_step_pre_hook(self, hook: Callable[..., Any]) -> Any:
        """``Optimizer.register_step_pre_hook``; a watched optimizer takes whole steps only."""
        handle = self.optimizer.register_step_pre_hook(hook)
        self.watch_handles.append(handle)
        return handle

    def register_step_post_hook(self, hook: Callable[..., Any]) -> Any:
        """``Optimizer.register_step_post_hook``; a watched optimizer takes whole steps only."""
        handle = self.optimizer.register_step_post_hook(hook)
        self.watch_handles.append(handle)
        return handle

    def watched(self) -> bool:
        """True while a step hook registered through this wrapper is still in place."""
        def alive(handle: Any) -> bool:
            hooks = handle.hooks_dict_ref()
            return hooks is not None and handle.id in hooks
        self.watch_handles = [h for h in self.watch_handles if alive(h)]
        return bool(self.watch_handles)

    # ------------------------------------------------------------------ the managed calls
    def params(self) -> List[torch.Tensor]:
        """Every parameter of the optimizer."""
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients, except inside an accumulation group; arm stepping inside backward when allowed."""
        if not self.control.plan.first:
            return
        self._disarm()
        self.optimizer.zero_grad(set_to_none=set_to_none)
        if self.in_backward and self.control.may_step_in_backward() and not self.watched():
            self._arm()

    def step(self, closure: Optional[Callable[[], Any]] = None) -> Any:
        """Apply the update at the last batch of an accumulation group (through the GradScaler under fp16), then
        free the gradients."""
        armed = self._disarm()
        params = self.params()
        if armed and all(p.grad is None for p in params):
            return None  # applied inside backward
        if not self.control.plan.last:
            return None
        if self.control.accum_steps > 1:
            for p in params:
                if p.grad is not None:
                    p.grad.div_(self.control.accum_steps)
        scaler = self.control.scaler
        result = scaler.step(self.optimizer) if scaler is not None else self.optimizer.step(closure)
        amp.clear_weight_cache()  # the weights changed: a later call in this step must cast them anew
        self.optimizer.zero_grad(set_to_none=True)  # the gradients are not needed until the next backward
        return result

    # ------------------------------------------------------------------ stepping inside backward
    def _arm(self) -> None:
        """Hook every trainable parameter: update it as soon as its gradient is final."""
        self._counts = {}
        for p in self.params():
            if p.requires_grad:
                self._handles.append(p.register_post_accumulate_grad_hook(self._on_gradient))

    def _on_gradient(self, param: torch.Tensor) -> None:
        n = self._counts.get(id(param), 0) + 1
        self._counts[id(param)] = n
        if n > 1:
            raise StepInBackwardError(
                "a parameter of an optimizer made with single_backward=True received gradients from two backward() "
                "calls in one step; its update is applied inside backward, so this step would be wrong: drop "
                "single_backward=True for this optimizer (make_optimizer)")
        self.optimizer.step()  # every other parameter's gradient is None here, so only ``param`` is updated
        amp.clear_weight_cache()
        param.grad = None

    def _disarm(self) -> bool:
        """Remove the hooks; return whether they were armed."""
        armed = bool(self._handles)
        for handle in self._handles:
            handle.remove()
        self._handles, self._counts = [], {}
        return armed
