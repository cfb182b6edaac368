"""The framework's part of a training step (models/step_control.py, models/wrappers.py): managed optimizers,
stepping inside backward, the fp16 loss scale at the networks' boundaries."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn

from models.step_control import ManagedOptimizer, StepControl, StepInBackwardError
from models.wrappers import MixedPrecision, unwrap


def adam(net: nn.Module, control: StepControl, single_backward: bool = False) -> ManagedOptimizer:
    """A managed fused Adam over ``net``."""
    return ManagedOptimizer(torch.optim.Adam(net.parameters(), lr=1e-2, fused=True), control, single_backward)


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))


def step(model: nn.Module, optimizer: ManagedOptimizer, x: torch.Tensor, backwards: int = 1) -> None:
    """zero_grad, ``backwards`` backward calls, step: as a model's step is written."""
    optimizer.zero_grad()
    for i in range(backwards):
        model(x + i).square().mean().backward()
    optimizer.step()


def updated_inside_backward(model: nn.Module, optimizer: ManagedOptimizer, x: torch.Tensor) -> bool:
    """Whether the weights changed during backward (before ``step``)."""
    before = [p.detach().clone() for p in model.parameters()]
    optimizer.zero_grad()
    model(x).square().mean().backward()
    changed = any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    optimizer.step()
    return changed


def test_step_in_backward_gives_the_numbers_of_a_step_after_backward() -> None:
    x = torch.randn(3, 4)
    a, b = net(), net()
    opt_a, opt_b = adam(a, StepControl(), single_backward=True), adam(b, StepControl())
    assert updated_inside_backward(a, opt_a, x) and not updated_inside_backward(b, opt_b, x)
    for _ in range(2):
        step(a, opt_a, x)
        step(b, opt_b, x)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb) and pa.grad is None and pb.grad is None
    sa, sb = opt_a.state_dict()["state"], opt_b.state_dict()["state"]
    assert all(torch.equal(sa[k]["exp_avg_sq"], sb[k]["exp_avg_sq"]) and float(sa[k]["step"]) == 3 for k in sa)


def test_several_processes_accumulation_and_loss_scaling_step_after_backward() -> None:
    x = torch.randn(3, 4)
    for control in (StepControl(world_size=2), StepControl(accum_steps=2), StepControl(scaler=torch.amp.GradScaler("cpu", enabled=False))):
        model = net()
        assert not updated_inside_backward(model, adam(model, control, single_backward=True), x)


def test_a_second_backward_in_one_step_is_an_error_not_a_partial_update() -> None:
    model = net()
    optimizer = adam(model, StepControl(), single_backward=True)
    with pytest.raises(StepInBackwardError, match="single_backward=True"):
        step(model, optimizer, torch.randn(3, 4), backwards=2)


def test_a_step_hook_turns_stepping_inside_backward_off_and_sees_whole_steps() -> None:
    model = net()
    optimizer = adam(model, StepControl(), single_backward=True)
    calls = []
    handle = optimizer.register_step_pre_hook(lambda *args: calls.append(1))
    assert optimizer.watched()
    assert not updated_inside_backward(model, optimizer, torch.randn(3, 4))
    step(model, optimizer, torch.randn(3, 4))
    assert calls == [1, 1]
    handle.remove()
    assert not optimizer.watched()
    assert updated_inside_backward(model, optimizer, torch.randn(3, 4))


def test_accumulation_applies_the_mean_once_per_group() -> None:
    x = torch.randn(4, 4)
    a, b = net(), net()
    control = StepControl(accum_steps=2)
    opt_a, opt_b = adam(a, control), adam(b, StepControl())
    for i in range(2):
        control.begin()
        step(a, opt_a, x[2 * i:2 * i + 2])
        if i == 0:
            assert not opt_a.state  # nothing applied before the group is complete
        control.end()
    step(b, opt_b, x)  # one batch of 4: the mean over both halves
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=0, atol=1e-6)


def test_the_wrapped_optimizer_is_reachable_and_copies() -> None:
    model = net()
    optimizer = adam(model, StepControl())
    assert isinstance(optimizer.optimizer, torch.optim.Adam) and optimizer.param_groups is optimizer.optimizer.param_groups
    clone = copy.deepcopy(optimizer)
    assert isinstance(clone.optimizer, torch.optim.Adam)


@pytest.mark.skipif(not hasattr(torch.amp, "GradScaler"), reason="torch.amp.GradScaler needs PyTorch >= 2.3")
def test_loss_scale_at_the_network_boundary_scales_only_the_parameter_gradients() -> None:
    """fp16's GradScaler: the parameters' gradients come out multiplied by the scale, the gradients the other
    networks and the inputs see are the true ones (checked in float32 with a fixed scale)."""
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    inner, plain = net(), net()
    wrapped = MixedPrecision(inner, "none", "cpu", scaler)
    assert unwrap(wrapped) is inner
    x1 = torch.randn(3, 4, requires_grad=True)
    wrapped(x1).square().sum().backward()
    x2 = x1.detach().clone().requires_grad_(True)
    plain(x2).square().sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad)
    for pw, pp in zip(inner.parameters(), plain.parameters()):
        torch.testing.assert_close(pw.grad, pp.grad * 1024.0)


@pytest.mark.parametrize("single_backward", [False, True])
def test_the_step_weight_cache_never_serves_weights_an_optimizer_changed(single_backward: bool) -> None:
    """--amp keeps autocast's cast weights for a whole step (util/amp.weight_cache_scope); a network called again
    after its optimizer stepped (after backward or inside it) sees the new weights, as without the cache."""
    from util import amp
    control = StepControl()
    model = MixedPrecision(net(), "bf16", "cpu")
    optimizer = adam(unwrap(model), control, single_backward=single_backward)
    x = torch.randn(3, 4)
    control.begin()
    with amp.weight_cache_scope("bf16", "cpu"):
        optimizer.zero_grad()
        before = model(x)
        before.square().mean().backward()
        optimizer.step()
        after = model(x)  # in the same step: must use the updated weights
    control.end()
    fresh = model(x)  # a new step: casts anew in any case
    assert not torch.equal(before, fresh)
    assert torch.equal(after, fresh)


def test_the_step_weight_cache_casts_a_network_once_per_step() -> None:
    """Inside the scope, three calls of one network share one cast of its weights (the point of the scope)."""
    from util import amp
    model = MixedPrecision(net(), "bf16", "cpu")
    x = torch.randn(3, 4)
    with torch.profiler.profile() as prof:
        with amp.weight_cache_scope("bf16", "cpu"):
            for _ in range(3):
                model(x)
    casts = sum(e.count for e in prof.key_averages() if e.key == "aten::_to_copy")
    with torch.profiler.profile() as prof:
        for _ in range(3):
            model(x)
    assert casts < sum(e.count for e in prof.key_averages() if e.key == "aten::_to_copy")
