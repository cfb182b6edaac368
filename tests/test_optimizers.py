"""models/optimizers.py against a plain torch.optim.Adam: the same updates and state, bit for bit.

``make_adam`` is ``torch.optim.Adam`` (fused on CPU/CUDA); ``allocate_adam_state`` creates Adam's state before the
first step and may not change a number, nor the state-dict format that checkpoints store.
"""
from __future__ import annotations

import copy
from typing import Dict, List

import pytest
import torch

from models.optimizers import allocate_adam_state, make_adam, match_state_layout

CONFIGS = {"fused": dict(fused=True), "foreach": dict(foreach=True), "for-loop": dict(foreach=False),
           "fused-amsgrad": dict(fused=True, amsgrad=True), "foreach-amsgrad": dict(foreach=True, amsgrad=True),
           "weight-decay": dict(fused=True, weight_decay=0.1)}


def small_net(channels_last: bool = False) -> torch.nn.Module:
    """Convolutions, a norm with affine parameters and a bias-free layer."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.InstanceNorm2d(4, affine=True),
                              torch.nn.Conv2d(4, 2, 1, bias=False))
    return net.to(memory_format=torch.channels_last) if channels_last else net


def state_snapshot(optimizer: torch.optim.Optimizer) -> Dict:
    """The optimizer's per-parameter state: every tensor's value, dtype, device, shape and strides."""
    return {i: {k: (v.dtype, v.device, tuple(v.shape), v.stride(), v.detach().clone()) for k, v in st.items()}
            for i, st in enumerate(optimizer.state[p] for g in optimizer.param_groups for p in g["params"])}


def assert_same_state(a: Dict, b: Dict) -> None:
    """Bit-identical optimizer states (values and layout)."""
    assert a.keys() == b.keys()
    for i in a:
        assert a[i].keys() == b[i].keys(), i
        for k in a[i]:
            assert a[i][k][:4] == b[i][k][:4], (i, k)
            assert torch.equal(a[i][k][4], b[i][k][4]), (i, k)


def train(nets: List[torch.nn.Module], opts: List[torch.optim.Optimizer], steps: int, scheds=()) -> None:
    """The same steps on every (net, optimizer) pair."""
    for step in range(steps):
        x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(step))
        for n, o in zip(nets, opts):
            o.zero_grad(set_to_none=True)
            n(x).square().mean().backward()
            o.step()
        for s in scheds:
            s.step()


@pytest.mark.parametrize("device", ["cpu"])
def test_make_adam_is_torch_adam_fused_where_possible(device: str) -> None:
    """A plain torch.optim.Adam, fused for float parameters on CPU/CUDA, with the official betas."""
    opt = make_adam(small_net().parameters(), lr=0.0002, betas=(0.5, 0.999), device=torch.device(device))
    assert type(opt) is torch.optim.Adam and opt.param_groups[0]["fused"]
    assert opt.param_groups[0]["betas"] == (0.5, 0.999) and opt.param_groups[0]["lr"] == 0.0002


def test_make_adam_uses_foreach_on_other_devices() -> None:
    """A device without a fused kernel in every supported torch gets the foreach implementation."""
    opt = make_adam(small_net().parameters(), lr=0.01, betas=(0.5, 0.999), device=torch.device("meta"))
    assert type(opt) is torch.optim.Adam and opt.param_groups[0]["foreach"] and not opt.param_groups[0]["fused"]


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("channels_last", [False, True])
def test_allocated_adam_state_equals_lazy_state(config: str, channels_last: bool) -> None:
    """State created up front is what Adam's first step creates: same tensors after 0, 1 and 2 steps."""
    nets = [small_net(channels_last), small_net(channels_last)]
    opts = [torch.optim.Adam(nets[0].parameters(), lr=0.01, **CONFIGS[config]),
            torch.optim.Adam(nets[1].parameters(), lr=0.01, **CONFIGS[config])]
    scheds = [torch.optim.lr_scheduler.StepLR(o, step_size=1, gamma=0.5) for o in opts]
    assert allocate_adam_state(opts[1]) == 5
    assert allocate_adam_state(opts[1]) == 0  # parameters with state are left alone
    assert opts[1].param_groups[0]["lr"] == 0.01 and opts[1].param_groups[0]["initial_lr"] == 0.01
    train(nets, opts, 1, scheds)
    assert_same_state(state_snapshot(opts[0]), state_snapshot(opts[1]))
    train(nets, opts, 1, scheds)
    assert_same_state(state_snapshot(opts[0]), state_snapshot(opts[1]))
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        assert torch.equal(a, b)
    assert opts[0].param_groups[0]["lr"] == opts[1].param_groups[0]["lr"] == 0.01 * 0.5 ** 2


def test_allocate_leaves_restored_frozen_and_foreign_state_alone() -> None:
    """A restored optimizer keeps its tensors; frozen parameters, differentiable groups and SGD get nothing."""
    nets = [small_net(), small_net()]
    opts = [torch.optim.Adam(n.parameters(), lr=0.01, fused=True) for n in nets]
    train(nets, opts, 2)
    restored = torch.optim.Adam(nets[1].parameters(), lr=0.01, fused=True)
    restored.load_state_dict(copy.deepcopy(opts[1].state_dict()))
    before = {id(t) for st in restored.state.values() for t in st.values()}
    assert allocate_adam_state(restored) == 0
    assert {id(t) for st in restored.state.values() for t in st.values()} == before

    net = small_net()
    net[0].weight.requires_grad_(False)
    frozen = torch.optim.Adam(net.parameters(), lr=0.01, fused=True)
    assert allocate_adam_state(frozen) == 4 and not frozen.state[net[0].weight]
    differentiable = torch.optim.Adam(small_net().parameters(), lr=0.01, differentiable=True)
    assert allocate_adam_state(differentiable) == 0 and not differentiable.state
    other = torch.optim.SGD(small_net().parameters(), lr=0.1)
    assert allocate_adam_state(other) == 0 and not other.state  # only Adam's layout is known


def test_checkpoint_format_round_trips_between_allocated_and_lazy() -> None:
    """The state dict (what training_state.pth stores) has Adam's own keys, loads into either kind of optimizer
    and training goes on identically: checkpoints written before and after this change resume alike."""
    nets = [small_net(), small_net()]
    opts = [make_adam(n.parameters(), lr=0.01, betas=(0.5, 0.999), device=torch.device("cpu")) for n in nets]
    allocate_adam_state(opts[1])
    train(nets, opts, 2)
    sd_lazy, sd_alloc = opts[0].state_dict(), opts[1].state_dict()
    assert sd_lazy["param_groups"] == sd_alloc["param_groups"]
    assert set(sd_alloc["state"][0]) == {"step", "exp_avg", "exp_avg_sq"}
    for key, state in sd_lazy["state"].items():
        assert state.keys() == sd_alloc["state"][key].keys()
        assert all(torch.equal(v, sd_alloc["state"][key][k]) and v.dtype == sd_alloc["state"][key][k].dtype
                   for k, v in state.items())
    swapped = [copy.deepcopy(nets[1]), copy.deepcopy(nets[0])]
    opts2 = [make_adam(n.parameters(), lr=0.5, betas=(0.5, 0.999), device=torch.device("cpu")) for n in swapped]
    allocate_adam_state(opts2[0])  # a checkpoint loaded over allocated state replaces it
    opts2[0].load_state_dict(copy.deepcopy(sd_alloc))  # state_dict() shares the live tensors
    opts2[1].load_state_dict(copy.deepcopy(sd_lazy))
    assert allocate_adam_state(opts2[1]) == 0
    train(nets + swapped, opts + opts2, 2)
    for group in zip(nets[0].parameters(), nets[1].parameters(), swapped[0].parameters(), swapped[1].parameters()):
        assert all(torch.equal(group[0], t) for t in group[1:])


@pytest.mark.parametrize("saved_channels_last,now_channels_last", [(False, True), (True, False)])
def test_state_restored_in_another_layout_steps_as_the_original(saved_channels_last: bool,
                                                                now_channels_last: bool) -> None:
    """Adam state saved with one memory layout and restored into parameters of the other: after
    ``match_state_layout`` it has the parameters' strides and the next steps equal an uninterrupted run's."""
    saved_net, net, straight = small_net(saved_channels_last), small_net(now_channels_last), small_net()
    saved_opt, straight_opt = make_adam(saved_net.parameters(), 0.01, (0.5, 0.999), torch.device("cpu")), \
        make_adam(straight.parameters(), 0.01, (0.5, 0.999), torch.device("cpu"))
    train([saved_net, straight], [saved_opt, straight_opt], 2)
    net.load_state_dict(saved_net.state_dict())
    opt = make_adam(net.parameters(), 0.01, (0.5, 0.999), torch.device("cpu"))
    opt.load_state_dict(copy.deepcopy(saved_opt.state_dict()))
    assert match_state_layout(opt) == 2 * 2  # the two 4-D weights, two moments each
    assert match_state_layout(opt) == 0
    for p in net.parameters():
        assert all(v.stride() == p.stride() for v in opt.state[p].values() if v.dim() == p.dim() > 0)
    train([net, straight], [opt, straight_opt], 3)
    for a, b in zip(net.parameters(), straight.parameters()):
        if a.dim() == 4:  # (the conv bias in front of the norm has a zero gradient: Adam turns rounding into steps)
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
