"""models/optimizers.py against torch.optim.Adam: the same updates, state, hooks and schedules, bit for bit.

``Adam`` is torch's Adam without the compile markers that import ``torch._dynamo`` (~150 MB of RSS);
``allocate_adam_state`` creates Adam's state before the first step. Neither may change a number.
"""
from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest
import torch

from models.optimizers import Adam, allocate_adam_state, make_adam

REPO = Path(__file__).resolve().parents[1]
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


@pytest.mark.parametrize("config", list(CONFIGS))
def test_adam_equals_torch_adam(config: str) -> None:
    """Same parameters and state after several steps, with an LR schedule on both."""
    nets = [small_net(), small_net()]
    opts = [torch.optim.Adam(nets[0].parameters(), lr=0.01, **CONFIGS[config]),
            Adam(nets[1].parameters(), lr=0.01, **CONFIGS[config])]
    scheds = [torch.optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.5) for o in opts]
    train(nets, opts, 5, scheds)
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        assert torch.equal(a, b)
    assert_same_state(state_snapshot(opts[0]), state_snapshot(opts[1]))
    assert opts[0].param_groups[0]["lr"] == opts[1].param_groups[0]["lr"] == 0.01 * 0.5 ** 2


def test_adam_state_dict_interchanges_with_torch_adam() -> None:
    """A state saved by either class loads into the other and training goes on identically."""
    nets = [small_net(), small_net()]
    opts = [torch.optim.Adam(nets[0].parameters(), lr=0.01, fused=True), Adam(nets[1].parameters(), lr=0.01, fused=True)]
    train(nets, opts, 2)
    sd_torch, sd_ours = opts[0].state_dict(), opts[1].state_dict()
    assert sd_torch["param_groups"] == sd_ours["param_groups"]
    assert sd_torch["state"].keys() == sd_ours["state"].keys()
    for key, state in sd_torch["state"].items():
        assert state.keys() == sd_ours["state"][key].keys()
        assert all(torch.equal(v, sd_ours["state"][key][k]) and v.dtype == sd_ours["state"][key][k].dtype
                   for k, v in state.items())
    swapped = [copy.deepcopy(nets[1]), copy.deepcopy(nets[0])]
    opts2 = [torch.optim.Adam(swapped[0].parameters(), lr=0.5, fused=True), Adam(swapped[1].parameters(), lr=0.5, fused=True)]
    opts2[0].load_state_dict(copy.deepcopy(sd_ours))  # state_dict() shares the live tensors
    opts2[1].load_state_dict(copy.deepcopy(sd_torch))
    train(nets + swapped, opts + opts2, 2)
    for group in zip(nets[0].parameters(), nets[1].parameters(), swapped[0].parameters(), swapped[1].parameters()):
        assert all(torch.equal(group[0], t) for t in group[1:])


def test_adam_runs_step_hooks_and_closure() -> None:
    """Pre/post step hooks run once per step; a closure's loss is returned; gradients stay off inside the step."""
    net = small_net()
    opt = Adam(net.parameters(), lr=0.01)
    calls: List[str] = []
    opt.register_step_pre_hook(lambda *a: calls.append("pre"))
    opt.register_step_post_hook(lambda *a: calls.append("post"))
    x = torch.randn(1, 3, 8, 8)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = net(x).square().mean()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert calls == ["pre", "post"] and float(loss.detach()) > 0
    assert all(not p.grad.requires_grad for p in net.parameters())


@pytest.mark.parametrize("device", ["cpu"])
def test_make_adam_is_fused_where_possible(device: str) -> None:
    """Fused kernel for float parameters on CPU/CUDA."""
    opt = make_adam(small_net().parameters(), lr=0.0002, betas=(0.5, 0.999), device=torch.device(device))
    assert isinstance(opt, torch.optim.Adam) and opt.param_groups[0]["fused"]
    assert opt.param_groups[0]["betas"] == (0.5, 0.999)


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("channels_last", [False, True])
def test_allocated_adam_state_equals_lazy_state(config: str, channels_last: bool) -> None:
    """State created up front is what Adam's first step creates: same tensors after 1 and after 2 steps."""
    nets = [small_net(channels_last), small_net(channels_last)]
    opts = [torch.optim.Adam(nets[0].parameters(), lr=0.01, **CONFIGS[config]),
            torch.optim.Adam(nets[1].parameters(), lr=0.01, **CONFIGS[config])]
    assert allocate_adam_state(opts[1]) == 5
    assert allocate_adam_state(opts[1]) == 0  # parameters with state are left alone
    for _ in range(2):
        train(nets, opts, 1)
        assert_same_state(state_snapshot(opts[0]), state_snapshot(opts[1]))
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        assert torch.equal(a, b)
    other = torch.optim.SGD(small_net().parameters(), lr=0.1)
    assert allocate_adam_state(other) == 0 and not other.state  # only Adam's layout is known


def test_training_does_not_import_dynamo(demo_root: Path, tmp_path: Path) -> None:
    """Real cycle_gan and pix2pix steps, an LR update and a state round trip leave torch._dynamo unimported."""
    code = f"""
import sys
sys.path.insert(0, {str(REPO / 'tests')!r})
from conftest import tiny_flags
from data import create_dataset
from models import create_model
from options.train_options import TrainOptions
for model_name, sub in (("cycle_gan", "demo"), ("pix2pix", "demo_pix2pix")):
    argv = ["--dataroot", {str(demo_root)!r} + "/" + sub, "--model", model_name, "--max_dataset_size", "2",
            *tiny_flags(model_name, {str(tmp_path)!r}), "--display_id", "0"]
    opt = TrainOptions().parse(argv, save=False)
    model = create_model(opt)
    model.setup(opt)
    model.allocate_optimizer_state()
    for data in create_dataset(opt):
        model.set_input(data)
        model.optimize_parameters()
    model.update_learning_rate()
    for o in model.optimizers:
        o.load_state_dict(o.state_dict())
bad = sorted(k for k in sys.modules if k.split(".")[0] == "sympy" or k.startswith("torch._dynamo"))
assert not bad, bad[:5]
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
