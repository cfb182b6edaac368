"""CUT's networks: antialias layers, generator/discriminator layouts and keys, encoder features, F, PatchNCE.

References are written here from the published formulas (kernels, layer orders, key names, loss), independently
of models/, and CUT-layout checkpoints are built by hand, so a layout or arithmetic slip in models/ shows up.
"""
from __future__ import annotations

import argparse
from typing import Dict, List, Tuple

import pytest
import torch
import torch.nn.functional as F

from models import checkpoint_io, networks
from models.antialias import Downsample, Upsample
from models.patchnce import PatchNCELoss

ANTIALIAS = [(False, False), (True, False), (False, True), (True, True)]  # (no_antialias, no_antialias_up)
AA_IDS = ["both-on", "down-off", "up-off", "both-off"]


# ----------------------------------------------------------------------------- reference arithmetic
def blur_down(x: torch.Tensor) -> torch.Tensor:
    """Reflection pad 1, depthwise stride-2 conv with outer([1,2,1],[1,2,1]) / 16."""
    row = torch.tensor([1.0, 2.0, 1.0])
    k = (row[:, None] * row[None, :] / 16).expand(x.shape[1], 1, 3, 3)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), k, stride=2, groups=x.shape[1])


def blur_up(x: torch.Tensor) -> torch.Tensor:
    """Replication pad 1, depthwise transposed conv (stride 2, padding 2) with outer([1,3,3,1]) / 64 * 4, trimmed."""
    row = torch.tensor([1.0, 3.0, 3.0, 1.0])
    k = (row[:, None] * row[None, :] / 64 * 4).expand(x.shape[1], 1, 4, 4)
    y = F.conv_transpose2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k, stride=2, padding=2, groups=x.shape[1])
    return y[:, :, 1:-1, 1:-1]


def layout(n_blocks: int, no_aa: bool, no_aa_up: bool) -> List[Tuple[str, int]]:
    """The generator's layer list as (kind, stride-or-channels note), written from the layer order."""
    seq = [("pad3", 0), ("conv7", 0), ("norm", 0), ("relu", 0)]
    for _ in range(2):
        seq += [("conv3s2", 0), ("norm", 0), ("relu", 0)] if no_aa else \
            [("conv3s1", 0), ("norm", 0), ("relu", 0), ("down", 0)]
    seq += [("block", 0)] * n_blocks
    for _ in range(2):
        seq += [("deconv", 0), ("norm", 0), ("relu", 0)] if no_aa_up else \
            [("up", 0), ("conv3s1", 0), ("norm", 0), ("relu", 0)]
    return seq + [("pad3", 0), ("conv7", 0), ("tanh", 0)]


def expected_keys(n_blocks: int, no_aa: bool, no_aa_up: bool) -> List[str]:
    """Instance-norm key list of the generator (convs have biases, norms have no state)."""
    keys = []
    for i, (kind, _) in enumerate(layout(n_blocks, no_aa, no_aa_up)):
        if kind in ("conv7", "conv3s1", "conv3s2", "deconv"):
            keys += [f"model.{i}.weight", f"model.{i}.bias"]
        elif kind in ("down", "up"):
            keys += [f"model.{i}.filt"]
        elif kind == "block":
            keys += [f"model.{i}.conv_block.{j}.{p}" for j in (1, 5) for p in ("weight", "bias")]
    return keys


def reference_G(sd: Dict[str, torch.Tensor], x: torch.Tensor, n_blocks: int, no_aa: bool, no_aa_up: bool,
                layers: Tuple[int, ...] = ()) -> Tuple[torch.Tensor, List[torch.Tensor]]:
    """The generator's forward pass written with torch.nn.functional from a state_dict (instance norm)."""
    def w(i, sub=""):
        return sd[f"model.{i}.{sub}weight"], sd[f"model.{i}.{sub}bias"]

    feats = []
    for i, (kind, _) in enumerate(layout(n_blocks, no_aa, no_aa_up)):
        if kind == "pad3":
            x = F.pad(x, (3, 3, 3, 3), mode="reflect")
        elif kind == "conv7":
            x = F.conv2d(x, *w(i))
        elif kind == "conv3s1":
            x = F.conv2d(x, *w(i), padding=1)
        elif kind == "conv3s2":
            x = F.conv2d(x, *w(i), stride=2, padding=1)
        elif kind == "deconv":
            x = F.conv_transpose2d(x, *w(i), stride=2, padding=1, output_padding=1)
        elif kind == "norm":
            x = F.instance_norm(x)
        elif kind == "relu":
            x = F.relu(x)
            if i - 1 in layers:  # the ReLU is in place: it rewrites the layer output collected just before
                feats[-1] = x
        elif kind == "down":
            x = blur_down(x)
        elif kind == "up":
            x = blur_up(x)
        elif kind == "block":
            h = F.relu(F.instance_norm(F.conv2d(F.pad(x, (1,) * 4, mode="reflect"), *w(i, "conv_block.1."))))
            x = x + F.instance_norm(F.conv2d(F.pad(h, (1,) * 4, mode="reflect"), *w(i, "conv_block.5.")))
        else:
            x = torch.tanh(x)
        if i in layers:
            feats.append(x)
    return x, feats


def cut_checkpoint(n_blocks: int, no_aa: bool, no_aa_up: bool, ngf: int = 4, seed: int = 0) -> Dict[str, torch.Tensor]:
    """A generator state_dict in the CUT code's layout, built by hand (random weights, formula kernels)."""
    g = torch.Generator().manual_seed(seed)
    sd: Dict[str, torch.Tensor] = {}
    ch = 3
    down_done = up_done = 0
    for i, (kind, _) in enumerate(layout(n_blocks, no_aa, no_aa_up)):
        if kind == "conv7":
            out = ngf if ch == 3 else 3
            sd[f"model.{i}.weight"], sd[f"model.{i}.bias"] = torch.randn(out, ch, 7, 7, generator=g) * 0.1, \
                torch.randn(out, generator=g) * 0.1
            ch = out
        elif kind in ("conv3s1", "conv3s2") and down_done < 2 and up_done == 0:
            out = ch * 2
            sd[f"model.{i}.weight"] = torch.randn(out, ch, 3, 3, generator=g) * 0.1
            sd[f"model.{i}.bias"] = torch.randn(out, generator=g) * 0.1
            ch, down_done = out, down_done + 1
        elif kind in ("conv3s1", "deconv"):
            out = ch // 2
            shape = (ch, out, 3, 3) if kind == "deconv" else (out, ch, 3, 3)
            sd[f"model.{i}.weight"] = torch.randn(*shape, generator=g) * 0.1
            sd[f"model.{i}.bias"] = torch.randn(out, generator=g) * 0.1
            ch, up_done = out, up_done + 1
        elif kind == "down":
            row = torch.tensor([1.0, 2.0, 1.0])
            sd[f"model.{i}.filt"] = (row[:, None] * row / 16).repeat(ch, 1, 1, 1)
        elif kind == "up":
            row = torch.tensor([1.0, 3.0, 3.0, 1.0])
            sd[f"model.{i}.filt"] = (row[:, None] * row / 16).repeat(ch, 1, 1, 1)
        elif kind == "block":
            for j in (1, 5):
                sd[f"model.{i}.conv_block.{j}.weight"] = torch.randn(ch, ch, 3, 3, generator=g) * 0.1
                sd[f"model.{i}.conv_block.{j}.bias"] = torch.randn(ch, generator=g) * 0.1
    return sd


def cut_G(n_blocks: int = 6, no_aa: bool = False, no_aa_up: bool = False, ngf: int = 4) -> torch.nn.Module:
    """Our generator in the given layout (instance norm, no dropout)."""
    netG = f"resnet_{n_blocks}blocks"
    return networks.define_G(3, 3, ngf, netG, "instance", False, no_antialias=no_aa, no_antialias_up=no_aa_up)


# ----------------------------------------------------------------------------- antialias layers
@pytest.mark.parametrize("size", [(8, 8), (9, 7), (1, 2)])
def test_downsample_and_upsample_match_the_formulas(size: Tuple[int, int]) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 5, *size)
    down, up = Downsample(5), Upsample(5)
    assert down.filt.shape == (5, 1, 3, 3) and up.filt.shape == (5, 1, 4, 4)
    assert list(down.state_dict()) == ["filt"] and list(up.state_dict()) == ["filt"]
    assert not list(down.parameters()) and not list(up.parameters())
    if min(size) > 1:
        expected = blur_down(x)
        assert down(x).shape == (2, 5, (size[0] + 1) // 2, (size[1] + 1) // 2)
        torch.testing.assert_close(down(x), expected, rtol=0, atol=1e-6)
    out = up(x)
    assert out.shape == (2, 5, 2 * size[0], 2 * size[1])
    torch.testing.assert_close(out, blur_up(x), rtol=0, atol=1e-6)
    # a constant stays constant (the kernels preserve the mean) away from no border at all
    torch.testing.assert_close(up(torch.ones(1, 5, *size)), torch.ones(1, 5, 2 * size[0], 2 * size[1]))


# ----------------------------------------------------------------------------- layouts and counts
@pytest.mark.parametrize("aa", ANTIALIAS, ids=AA_IDS)
@pytest.mark.parametrize("n_blocks", [9, 6])
def test_generator_keys_follow_the_cut_layout(n_blocks: int, aa: Tuple[bool, bool]) -> None:
    net = cut_G(n_blocks, *aa)
    assert list(net.state_dict()) == expected_keys(n_blocks, *aa)
    assert len(net.model) == networks.resnet_layer_count(n_blocks, *aa) == len(layout(n_blocks, *aa))


def test_cut_keys_spot_check() -> None:
    """The published indices with both on: Downsample at 7 and 11, blocks 12-20, Upsample 21/25, last conv 30."""
    keys = set(cut_G(9, False, False, ngf=4).state_dict())
    assert {"model.7.filt", "model.11.filt", "model.21.filt", "model.25.filt", "model.4.weight",
            "model.8.weight", "model.22.weight", "model.26.weight", "model.30.weight",
            "model.12.conv_block.1.weight", "model.20.conv_block.5.bias"} <= keys
    assert not any(k.startswith("model.31.") for k in keys)
    official = set(networks.define_G(3, 3, 4, "resnet_9blocks", "instance").state_dict())  # keyword omitted
    assert {"model.4.weight", "model.7.weight", "model.19.weight", "model.22.weight", "model.26.weight"} <= official
    assert not any(k.endswith("filt") for k in official)


@pytest.mark.parametrize("aa", ANTIALIAS, ids=AA_IDS)
def test_parameter_counts(aa: Tuple[bool, bool]) -> None:
    g = networks.define_G(3, 3, 64, "resnet_9blocks", "instance", no_antialias=aa[0], no_antialias_up=aa[1])
    assert networks.count_parameters(g) == 11_378_179
    d = networks.define_D(3, 64, "basic", norm="instance", no_antialias=aa[0])
    assert networks.count_parameters(d) == 2_764_737


def test_discriminator_keys_and_shapes() -> None:
    d = networks.define_D(3, 8, "basic", norm="instance", no_antialias=False)
    assert list(d.state_dict()) == ["model.0.weight", "model.0.bias", "model.2.filt", "model.3.weight",
                                    "model.3.bias", "model.6.filt", "model.7.weight", "model.7.bias",
                                    "model.10.filt", "model.11.weight", "model.11.bias", "model.14.weight",
                                    "model.14.bias"]
    assert [m.stride[0] for m in d.modules() if isinstance(m, torch.nn.Conv2d)] == [1, 1, 1, 1, 1]
    out = d(torch.randn(2, 3, 32, 32))
    assert out.shape[:2] == (2, 1)
    geo = networks.discriminator_geometry(d, 32)
    assert geo["output_size"] == out.shape[-1]
    n = networks.define_D(3, 8, "n_layers", 2, norm="batch", no_antialias=False)
    assert sum(k.endswith("filt") for k in n.state_dict()) == 2
    pixel = networks.define_D(3, 8, "pixel", norm="instance", no_antialias=False)
    assert list(pixel.state_dict()) == list(networks.define_D(3, 8, "pixel", norm="instance").state_dict())


def test_unet_refuses_antialias_and_upsample_conflicts() -> None:
    with pytest.raises(ValueError, match="ResNet generators only"):
        networks.define_G(3, 3, 4, "unet_128", "batch", no_antialias=False)
    with pytest.raises(ValueError, match="--no_antialias_up"):
        networks.define_G(3, 3, 4, "resnet_6blocks", "instance", upsample="nearest", no_antialias_up=False)
    # the resize-convolution still combines with antialiased downsampling
    net = networks.define_G(3, 3, 4, "resnet_6blocks", "instance", upsample="nearest", no_antialias=False)
    assert net(torch.randn(1, 3, 16, 16)).shape == (1, 3, 16, 16)


# ----------------------------------------------------------------------------- CUT checkpoints
@pytest.mark.parametrize("aa", ANTIALIAS, ids=AA_IDS)
@pytest.mark.parametrize("prefixed", [False, True], ids=["plain", "module-prefix"])
def test_cut_checkpoint_loads_strictly_and_matches_the_reference(aa: Tuple[bool, bool], prefixed: bool,
                                                                 tmp_path) -> None:
    """A hand-built CUT-layout file (also with DataParallel's ``module.`` keys) loads and gives the reference."""
    sd = cut_checkpoint(6, *aa)
    saved = {("module." + k if prefixed else k): v for k, v in sd.items()}
    torch.save(saved, tmp_path / "latest_net_G.pth")
    net = cut_G(6, *aa)
    checkpoint_io.load_network(net, tmp_path / "latest_net_G.pth", name="G")
    torch.manual_seed(1)
    x = torch.rand(2, 3, 16, 20) * 2 - 1
    with torch.no_grad():
        ours = net(x)
        expected, _ = reference_G(sd, x, 6, *aa)
    torch.testing.assert_close(ours, expected, rtol=0, atol=2e-5)


def test_wrong_layout_names_the_antialias_flag(tmp_path) -> None:
    torch.save(cut_checkpoint(6, False, False), tmp_path / "g.pth")
    with pytest.raises(checkpoint_io.CheckpointError, match="antialias"):
        checkpoint_io.load_network(networks.define_G(3, 3, 4, "resnet_6blocks", "instance"), tmp_path / "g.pth")


# ----------------------------------------------------------------------------- encoder features
@pytest.mark.parametrize("aa", ANTIALIAS, ids=AA_IDS)
def test_features_are_the_outputs_at_the_indices(aa: Tuple[bool, bool]) -> None:
    sd = cut_checkpoint(9, *aa)
    net = cut_G(9, *aa)
    net.load_state_dict(sd)
    layers = (0, 4, 8, 12, 16)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        feats = net(x, list(layers), encode_only=True)
        out, both = net(x, list(layers))
        expected_out, expected = reference_G(sd, x, 9, *aa, layers=layers)
    assert len(feats) == len(layers)
    for got, want, again in zip(feats, expected, both):
        torch.testing.assert_close(got, want, rtol=0, atol=2e-5)
        assert torch.equal(got, again)
    torch.testing.assert_close(out, expected_out, rtol=0, atol=2e-5)
    assert feats[0].shape == (2, 3, 22, 22)  # the reflection-padded input
    if not aa[0]:  # the published shapes of the default (antialiased) layout
        assert [tuple(f.shape[1:]) for f in feats[1:]] == [(8, 16, 16), (16, 8, 8), (16, 4, 4), (16, 4, 4)]


def test_encode_only_stops_early_and_plain_forward_keeps_any_size() -> None:
    net = cut_G(6, False, False)
    calls = []
    for i, layer in enumerate(net.model):
        layer.register_forward_hook(lambda m, a, o, i=i: calls.append(i))
    net(torch.randn(1, 3, 16, 16), [0, 4], encode_only=True)
    assert calls == [0, 1, 2, 3, 4]
    assert net(torch.randn(1, 3, 17, 19)).shape == (1, 3, 17, 19)


# ----------------------------------------------------------------------------- F
def feature_maps(batch: int = 2, size: int = 8) -> List[torch.Tensor]:
    """Maps with the default layers' channels at ngf 64 (3, 128, 256, 256, 256)."""
    torch.manual_seed(0)
    return [torch.randn(batch, c, size, size) for c in (3, 128, 256, 256, 256)]


def test_mlp_heads_are_built_at_the_first_call_then_initialised() -> None:
    opt = argparse.Namespace(netF_nc=256)
    f = networks.define_F(3, "mlp_sample", "instance", False, "xavier", 0.02, opt=opt)
    assert not list(f.parameters())
    feats = feature_maps()
    f(feats, 16)
    keys = list(f.state_dict())
    assert keys == [f"mlp_{i}.{j}.{p}" for i in range(5) for j in (0, 2) for p in ("weight", "bias")]
    assert networks.count_parameters(f) == 560_384
    assert all(float(f.state_dict()[k].abs().max()) == 0 for k in keys if k.endswith("bias"))
    w = f.mlp_1[0].weight  # xavier_normal with gain 0.02: std = 0.02 * sqrt(2 / (fan_in + fan_out))
    assert abs(float(w.detach().std()) - 0.02 * (2 / (128 + 256)) ** 0.5) < 2e-4


@pytest.mark.parametrize("netF", networks.list_feature_networks())
@pytest.mark.parametrize("batch", [1, 2])
def test_sampling_rows_and_shared_ids(netF: str, batch: int) -> None:
    f = networks.define_F(3, netF, init_type="xavier", opt=argparse.Namespace(netF_nc=32))
    feats = [m[:, :16] for m in feature_maps(batch)]
    f(feats, 10)  # builds mlp_sample's heads (their initialisation draws random numbers too)
    torch.manual_seed(3)
    out, ids = f(feats, 10)
    rows = 16 if netF == "reshape" else 10
    for o in out:
        assert o.shape == (batch * rows, 32 if netF == "mlp_sample" else o.shape[1])
        norms = o.norm(dim=1)  # x / (|x| + 1e-7): just below 1 (heads start with tiny outputs at gain 0.02)
        assert bool((norms <= 1 + 1e-6).all() and (norms > 0.99).all()), norms
    if netF == "reshape":
        pooled = F.adaptive_avg_pool2d(feats[1], 4).permute(0, 2, 3, 1).reshape(-1, feats[1].shape[1])
        torch.testing.assert_close(out[1], pooled / (pooled.norm(dim=1, keepdim=True) + 1e-7))
        return
    torch.manual_seed(3)
    assert torch.equal(ids[0], torch.randperm(64)[:10])  # torch's CPU generator draws the positions
    again, same = f(feats, 10, ids)
    assert all(torch.equal(a, b) for a, b in zip(ids, same)) and all(torch.equal(a, b) for a, b in zip(out, again))
    if netF == "sample":  # the rows are the maps' positions ids, image-major, normalised
        flat = feats[2].permute(0, 2, 3, 1).reshape(batch, 64, -1)[:, ids[2]].reshape(batch * 10, -1)
        torch.testing.assert_close(out[2], flat / (flat.norm(dim=1, keepdim=True) + 1e-7))
    whole, whole_ids = f(feats, 0)  # num_patches 0: every position, in order, as rows like any sample
    assert whole[1].shape == (batch * 64, 32 if netF == "mlp_sample" else feats[1].shape[1])
    assert all(torch.equal(i, torch.arange(64)) for i in whole_ids)
    listed, _ = f(feats, 64, [torch.arange(64)] * len(feats))
    assert all(torch.equal(a, b) for a, b in zip(whole, listed))


def test_unknown_netF_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="--netF.*mlp_sample, sample, reshape"):
        networks.define_F(3, "strided_conv")


# ----------------------------------------------------------------------------- PatchNCE
def direct_patchnce(q: torch.Tensor, k: torch.Tensor, groups: int, tau: float) -> torch.Tensor:
    """Per row i: -log( exp(q_i.k_i / tau) / (exp(q_i.k_i / tau) + sum_{j != i, same group} exp(q_i.k_j / tau)) ),
    where the own key among the negatives counts with logit -10 / tau."""
    rows = q.shape[0]
    per = rows // groups
    losses = []
    for i in range(rows):
        g = i // per
        pos = torch.dot(q[i], k[i]) / tau
        terms = [pos]
        for j in range(g * per, (g + 1) * per):
            terms.append(torch.tensor(-10.0 / tau) if j == i else torch.dot(q[i], k[j]) / tau)
        losses.append(torch.logsumexp(torch.stack(terms), 0) - pos)
    return torch.stack(losses)


@pytest.mark.parametrize("all_negatives", [False, True])
@pytest.mark.parametrize("batch", [1, 2, 3])
def test_patchnce_matches_the_formula(batch: int, all_negatives: bool) -> None:
    torch.manual_seed(0)
    q = F.normalize(torch.randn(batch * 5, 7), dim=1)
    k = F.normalize(torch.randn(batch * 5, 7), dim=1)
    opt = argparse.Namespace(nce_T=0.07, batch_size=4, nce_includes_all_negatives_from_minibatch=all_negatives)
    loss = PatchNCELoss(opt)(q, k, batch_size=batch)  # the batch actually given, not opt.batch_size
    assert loss.shape == (batch * 5,)
    torch.testing.assert_close(loss, direct_patchnce(q, k, 1 if all_negatives else batch, 0.07), rtol=1e-5,
                               atol=1e-5)
    if batch == 1 or all_negatives:
        return
    wrong = PatchNCELoss(argparse.Namespace(nce_T=0.07, batch_size=1,
                                            nce_includes_all_negatives_from_minibatch=False))(q, k)
    assert not torch.allclose(wrong, loss)  # grouping by opt.batch_size would mix the images' patches


def test_patchnce_keys_get_no_gradient() -> None:
    q = F.normalize(torch.randn(6, 4), dim=1).requires_grad_()
    k = F.normalize(torch.randn(6, 4), dim=1).requires_grad_()
    PatchNCELoss(argparse.Namespace(nce_T=0.07, batch_size=2,
                                    nce_includes_all_negatives_from_minibatch=False))(q, k).mean().backward()
    assert q.grad is not None and k.grad is None


def test_zero_rows_have_a_finite_gradient() -> None:
    """A head whose ReLUs are all off outputs a zero row: its normalisation must not turn the step into NaN."""
    x = torch.zeros(3, 4)
    x[1] = torch.tensor([3.0, 4.0, 0.0, 0.0])
    x.requires_grad_()
    y = networks.l2_normalize(x)
    torch.testing.assert_close(y[1].detach(), torch.tensor([0.6, 0.8, 0.0, 0.0]))
    assert torch.equal(y[0].detach(), torch.zeros(4))
    y.sum().backward()
    assert bool(torch.isfinite(x.grad).all())


@pytest.mark.slow
def test_torch_compile_runs_the_antialiased_generator() -> None:
    """torch.compile (inductor) on the CUT layout: features and output in one call, forward and backward."""
    from test_performance_paths import compile_usable

    reason = compile_usable()
    if reason:
        pytest.skip(f"torch.compile is not usable here ({reason})")
    torch.manual_seed(0)
    # no residual blocks (official layers; inductor's cost on a CPU grows with every kernel to build)
    net = networks.ResnetGenerator(3, 3, 2, networks.get_norm_layer("instance"), n_blocks=0, no_antialias=False,
                                   no_antialias_up=False)
    compiled = torch.compile(net)
    x = torch.randn(1, 3, 16, 16, requires_grad=True)
    out, feats = compiled(x, [0, 4, 8])
    (out.mean() + sum(f.mean() for f in feats)).backward()
    grad = x.grad.clone()
    x.grad = None
    eager_out, eager_feats = net(x, [0, 4, 8])
    (eager_out.mean() + sum(f.mean() for f in eager_feats)).backward()
    torch.testing.assert_close(out, eager_out, rtol=0, atol=1e-5)
    torch.testing.assert_close(grad, x.grad, rtol=0, atol=1e-6)
