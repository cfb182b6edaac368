"""export.py: TorchScript and ONNX files that match the eager generator at several image sizes."""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT, load_script
from models import arch_config, checkpoint_io, networks

# Multiples of 4 (ResNet) and not; below 64 the U-Nets replicate-pad, at 100x120 they reflect-pad.
SIZES = [(32, 48), (37, 45), (100, 120)]
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def export_module():
    """export.py imported by path."""
    return load_script("export")


def make_checkpoint(root: Path, name: str, net_name: str, netG: str, norm: str = "instance", ngf: int = 8,
                    dropout: bool = False, upsample: str = "deconv", config: bool = True) -> torch.nn.Module:
    """A checkpoint folder like train.py's: ``latest_net_<net>.pth`` (+ config.json); returns the eager net."""
    torch.manual_seed(0)
    net = networks.define_G(3, 3, ngf, netG, norm, dropout, upsample=upsample)
    with torch.no_grad():  # non-zero biases and BN statistics, so every parameter matters
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
        for name_, b in net.named_buffers():
            if name_.endswith("running_var"):
                b.uniform_(0.5, 1.5)
            elif name_.endswith("running_mean"):
                b.normal_(0.0, 0.1)
    save_dir = root / name
    save_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_io.save_weights(checkpoint_io.plain_state_dict(net), save_dir / f"latest_net_{net_name}.pth")
    if config:
        spec = {"kind": "G", "netG": netG, "input_nc": 3, "output_nc": 3, "ngf": ngf, "norm": norm,
                "use_dropout": dropout, "upsample": upsample}
        opt = argparse.Namespace(model="pix2pix", netG=netG, norm=norm, ngf=ngf, input_nc=3, output_nc=3)
        arch_config.write_config(str(save_dir), arch_config.build_config(opt, {net_name: spec}))
    if norm == "syncbatch":  # eval maths of SyncBatchNorm = BatchNorm; compare with the batch-norm build
        eager = networks.define_G(3, 3, ngf, netG, "batch", dropout, upsample=upsample)
        eager.load_state_dict(net.state_dict())
        net = eager
    return net.eval()


def check_image(path: Path, h: int = 36, w: int = 52) -> Path:
    """A random RGB PNG (a size that needs padding)."""
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def run_torchscript(path: str, x: torch.Tensor) -> torch.Tensor:
    """Load a TorchScript file and run it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.load(path, map_location="cpu")
    with torch.no_grad(), torch.jit.optimized_execution(False):  # no per-shape re-profiling (slow, same maths)
        return module(x)


def run_onnx(path: str, x: torch.Tensor) -> torch.Tensor:
    """Run an ONNX file with onnxruntime."""
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is in requirements-dev.txt")
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"input": x.numpy()})[0])


def assert_matches_eager(net: torch.nn.Module, files: Dict[str, str], sizes: List[tuple], batch: int = 1) -> None:
    """Every exported file gives the eager output (same shape, within TOLERANCE) at every size."""
    torch.manual_seed(1)
    for h, w in sizes:
        x = torch.rand(batch, 3, h, w) * 2 - 1
        with torch.no_grad():
            ref = net(x)
        assert ref.shape == (batch, 3, h, w)
        for fmt, path in files.items():
            out = run_torchscript(path, x) if fmt == "torchscript" else run_onnx(path, x)
            assert out.shape == ref.shape, (fmt, h, w)
            assert float((out - ref).abs().max()) < TOLERANCE, (fmt, h, w)


@pytest.mark.slow
@pytest.mark.parametrize("netG", ["resnet_6blocks", "unet_128"])
def test_export_command_resnet_and_unet(netG: str, export_module, tmp_path: Path) -> None:
    """The command writes both formats from config.json; they match eager at several sizes and batch sizes."""
    pytest.importorskip("onnx", reason="onnx is in requirements-dev.txt")
    net = make_checkpoint(tmp_path / "ckpt", "exp", "G", netG, norm="batch", dropout=True)
    out = tmp_path / "out"
    report = export_module.main(["--name", "exp", "--checkpoints_dir", str(tmp_path / "ckpt"), "--out", str(out),
                                 "--check_image", str(check_image(tmp_path / "img.png")), "--tolerance", "1e-4",
                                 "--format", "torchscript,onnx"])
    assert report["net"] == "G" and report["architecture"]["netG"] == netG
    assert report["architecture"]["no_dropout"] is False and report["architecture"]["norm"] == "batch"
    files = report["files"]
    assert sorted(files) == ["onnx", "torchscript"] and all(Path(p).is_file() for p in files.values())
    assert Path(files["onnx"]).name == "exp_latest_net_G.onnx"
    for fmt in files:  # the command's own check: the image and a smaller crop of it
        shapes = [tuple(c["input_shape"]) for c in report["checks"][fmt]]
        assert shapes == [(1, 3, 36, 52), (1, 3, 28, 42)]
        assert all(c["max_abs_diff"] < 1e-4 for c in report["checks"][fmt])
    saved = json.loads((out / "exp_latest_net_G.json").read_text())
    assert saved["files"] == files
    assert_matches_eager(net, files, SIZES[:2], batch=2)
    assert_matches_eager(net, {"onnx": files["onnx"]}, SIZES[2:])
    import onnx

    dims = [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in list(onnx.load(files["onnx"]).graph.input) + list(onnx.load(files["onnx"]).graph.output)]
    assert dims == [["batch", 3, "height", "width"]] * 2


VARIANTS = ([(netG, "deconv") for netG in networks.list_generators()]
            + [("unet_128", mode) for mode in networks.UPSAMPLE_MODES if mode != "deconv"])


@pytest.mark.parametrize("netG, upsample", VARIANTS)
def test_torchscript_every_generator(netG: str, upsample: str, export_module, tmp_path: Path) -> None:
    """Every registered generator (and upsampling mode) scripts with dynamic H/W, equal to eager."""
    net = networks.define_G(3, 3, 4, netG, "instance", False, upsample=upsample).eval()
    path = export_module.export_torchscript(export_module.exportable(net), str(tmp_path / "g.pt"))
    assert_matches_eager(net, {"torchscript": path}, SIZES[:2])


@pytest.mark.parametrize("netG", ["unet_128"])
def test_legacy_onnx_exporter(netG: str, export_module, tmp_path: Path) -> None:
    """``--onnx_exporter legacy`` also keeps batch, height and width dynamic."""
    pytest.importorskip("onnx", reason="onnx is in requirements-dev.txt")
    net = make_checkpoint(tmp_path / "ckpt", "exp", "G_A", netG)
    report = export_module.main(["--name", "exp", "--checkpoints_dir", str(tmp_path / "ckpt"), "--out",
                                 str(tmp_path / "out"), "--format", "onnx", "--onnx_exporter", "legacy",
                                 "--check_size", "40"])
    assert report["net"] == "G_A" and list(report["files"]) == ["onnx"]
    assert_matches_eager(net, report["files"], SIZES, batch=2)


def test_official_checkpoint_uses_flags(export_module, tmp_path: Path) -> None:
    """Without config.json the flags describe the network; a wrong one is named in the error."""
    ckpt = tmp_path / "ckpt"
    net = make_checkpoint(ckpt, "official", "G_A", "resnet_6blocks", ngf=8, config=False)
    base = ["--name", "official", "--checkpoints_dir", str(ckpt), "--out", str(tmp_path / "out"),
            "--format", "torchscript", "--check_size", "24", "--netG", "resnet_6blocks", "--ngf", "8"]
    with pytest.raises(checkpoint_io.CheckpointError, match="--no_dropout"):
        export_module.main(base)  # official default: dropout on; this checkpoint has none
    report = export_module.main(base + ["--no_dropout"])
    assert report["config_json"] is False and report["net"] == "G_A"
    assert_matches_eager(net, report["files"], SIZES[:2])


def test_syncbatch_checkpoint_exports_as_batchnorm(export_module, tmp_path: Path) -> None:
    """A generator trained with --norm syncbatch exports (eval-mode batch norm, same keys)."""
    net = make_checkpoint(tmp_path / "ckpt", "sbn", "G", "unet_128", norm="syncbatch")
    report = export_module.main(["--name", "sbn", "--checkpoints_dir", str(tmp_path / "ckpt"), "--out",
                                 str(tmp_path / "out"), "--format", "torchscript", "--check_size", "40"])
    assert report["architecture"]["norm"] == "syncbatch"
    assert_matches_eager(net, report["files"], SIZES[:2])


def test_check_fails_when_the_file_differs(export_module, tmp_path: Path) -> None:
    """The comparison with eager is real: another network's file is rejected with the difference."""
    a = networks.define_G(3, 3, 4, "resnet_6blocks", "instance", False).eval()
    b = networks.define_G(3, 3, 4, "resnet_6blocks", "instance", False).eval()
    path = export_module.export_torchscript(export_module.exportable(a), str(tmp_path / "a.pt"))
    inputs = export_module.check_sizes(export_module.load_check_image(None, 3, 20))
    assert [tuple(x.shape) for x in inputs] == [(1, 3, 20, 20), (1, 3, 16, 18)]
    assert export_module.check_file("torchscript", path, a, inputs, 1e-6)[0]["max_abs_diff"] == 0.0
    with pytest.raises(export_module.ExportError, match="differs from the eager model"):
        export_module.check_file("torchscript", path, b, inputs, 1e-3)


@pytest.mark.parametrize("argv, message", [
    (["--format", "tflite"], "--format 'tflite'"),
    (["--onnx_exporter", "magic"], "argument --onnx_exporter: 'magic' is not valid; choose one of: dynamo, legacy"),
    (["--netG", "unet_64"], "argument --netG: 'unet_64' is not valid; choose one of: resnet_9blocks, resnet_6blocks, "
                            "unet_128, unet_256, stylegan2, smallstylegan2; did you mean unet_256?"),
    (["--tolerance", "-1"], "--tolerance must be >= 0"),
])
def test_bad_flags_are_named(argv: List[str], message: str, export_module, tmp_path: Path,
                             capsys: pytest.CaptureFixture) -> None:
    """Invalid flags raise an error that names the flag (argparse's one line for a name outside its registry)."""
    make_checkpoint(tmp_path / "ckpt", "exp", "G", "resnet_6blocks")
    with pytest.raises((export_module.ExportError, SystemExit)) as err:
        export_module.main(["--name", "exp", "--checkpoints_dir", str(tmp_path / "ckpt"), "--out",
                            str(tmp_path / "out")] + argv)
    said = capsys.readouterr().err.strip().splitlines()[-1] if err.type is SystemExit else str(err.value)
    assert message in said, said


def test_validate_checks_names_that_bypassed_argparse(export_module) -> None:
    """``export(args)`` called with a Namespace built in code still refuses a name outside the registry."""
    args = export_module.make_parser().parse_args(["--name", "exp", "--out", "o"])
    args.norm = "group"
    with pytest.raises(export_module.ExportError, match="--norm 'group' is not valid; choose one of: batch"):
        export_module.validate(args)


@pytest.mark.parametrize("missing", ["dynamo argument", "Dim.DYNAMIC"])
def test_onnx_export_on_too_old_torch_says_what_to_do(missing: str, export_module, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """PyTorch releases between the project's minimum (2.4) and the exporters' needs get a one-line error naming
    the installed version, before any file is written; TorchScript still works."""
    if missing == "Dim.DYNAMIC":
        monkeypatch.delattr(torch.export.Dim, "DYNAMIC")
    else:
        monkeypatch.setattr(torch.onnx, "export", lambda model, args, f=None, *, input_names=None: None)
    make_checkpoint(tmp_path / "ckpt", "exp", "G", "resnet_6blocks")
    base = ["--name", "exp", "--checkpoints_dir", str(tmp_path / "ckpt"), "--out", str(tmp_path / "out")]
    with pytest.raises(export_module.ExportError, match=re.escape(f"torch {torch.__version__} is installed; ONNX "
                                                                  "export needs PyTorch 2.6 or later")) as err:
        export_module.main(base + ["--format", "onnx"])
    assert ("--onnx_exporter legacy" in str(err.value)) == (missing == "Dim.DYNAMIC")
    assert not (tmp_path / "out").exists()
    if missing == "Dim.DYNAMIC":
        assert export_module.onnx_unsupported("legacy") is None
    report = export_module.main(base + ["--format", "torchscript", "--check_size", "16"])
    assert list(report["files"]) == ["torchscript"]


def test_missing_checkpoint_folder(export_module, tmp_path: Path) -> None:
    """A wrong --name says which folder is missing."""
    with pytest.raises(export_module.ExportError, match="checkpoint folder not found"):
        export_module.main(["--name", "nope", "--checkpoints_dir", str(tmp_path), "--out", str(tmp_path / "o")])


# ---------------------------------------------------------------------------------------------------- installs
ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")  # the `export` extra, not in requirements.txt


def test_default_export_needs_only_the_runtime_install(tmp_path: Path) -> None:
    """With the ONNX packages unimportable (the runtime requirements only), the defaults export TorchScript and
    say in one line how to get ONNX too."""
    make_checkpoint(tmp_path / "ckpt", "exp", "G", "resnet_6blocks")
    argv = ["export.py", "--name", "exp", "--checkpoints_dir", str(tmp_path / "ckpt"), "--out", str(tmp_path / "o"),
            "--check_size", "24"]
    code = (f"import runpy, sys\nsys.modules.update(dict.fromkeys({ONNX_PACKAGES!r}))\nsys.argv = {argv!r}\n"
            "runpy.run_path('export.py', run_name='__main__')\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["exp_latest_net_G.json",
                                                                  "exp_latest_net_G.pt2"]
    assert "add --format export,onnx" in proc.stdout and "pip install -e .[export]" in proc.stdout


@pytest.mark.parametrize("blocked, extra, message", [
    (ONNX_PACKAGES, [], "--format onnx needs the package(s) onnx, onnxscript: pip install -e .[export]"),
    (("onnxscript",), [], "--format onnx needs the package(s) onnxscript: pip install -e .[export]"),
    (("onnxscript",), ["--onnx_exporter", "legacy", "--no_check"], None),  # the legacy exporter needs only onnx
    (("onnxruntime",), [], "checking the ONNX file needs the package onnxruntime: pip install -e .[export]"),
])
def test_onnx_without_its_packages_says_what_to_install(blocked, extra, message, export_module, tmp_path: Path,
                                                         monkeypatch, capsys) -> None:
    """--format onnx with a package missing: one error line naming the packages and the install command, exit
    status 2, before anything is loaded or written."""
    for name in blocked:
        monkeypatch.setitem(sys.modules, name, None)  # import fails, whatever is installed
    argv = ["--name", "exp", "--checkpoints_dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"),
            "--format", "onnx"] + extra
    if message is None:  # nothing missing for this choice: it goes on (and stops at the missing checkpoint)
        pytest.importorskip("onnx", reason="onnx is in requirements-dev.txt")
        with pytest.raises(export_module.ExportError, match="checkpoint folder not found"):
            export_module.main(argv)
        return
    with pytest.raises(SystemExit) as stopped:
        export_module.main(argv)
    last = capsys.readouterr().err.splitlines()[-1]
    assert stopped.value.code == 2 and message in last, last
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------------------------------------------- torch.export
def run_program(path: str, x: torch.Tensor) -> torch.Tensor:
    """Load a .pt2 file with torch.export.load and run it."""
    with torch.no_grad():
        return torch.export.load(path).module()(x)


def test_default_format_is_torch_export(export_module, tmp_path: Path) -> None:
    """On this PyTorch the default writes a .pt2 that torch.export.load runs, equal to eager within TOLERANCE at
    several batch sizes and heights/widths (multiples of 4 for a ResNet), checked by the command itself."""
    assert hasattr(torch, "export") and export_module.DEFAULT_FORMATS == "export"
    net = make_checkpoint(tmp_path / "ckpt", "exp", "G", "resnet_6blocks", norm="batch")
    report = export_module.main(["--name", "exp", "--checkpoints_dir", str(tmp_path / "ckpt"), "--out",
                                 str(tmp_path / "out"), "--check_image", str(check_image(tmp_path / "i.png"))])
    assert list(report["files"]) == ["export"] and report["files"]["export"].endswith("exp_latest_net_G.pt2")
    assert [c["input_shape"] for c in report["checks"]["export"]] == [[1, 3, 36, 52], [1, 3, 28, 44]]
    assert report["io"]["pt2_size_multiple"] == 4
    torch.manual_seed(2)
    for batch, (h, w) in [(1, (32, 48)), (2, (40, 36)), (3, (100, 120))]:
        x = torch.rand(batch, 3, h, w) * 2 - 1
        with torch.no_grad():
            ref = net(x)
        out = run_program(report["files"]["export"], x)
        assert out.shape == ref.shape and float((out - ref).abs().max()) < TOLERANCE, (batch, h, w)


def test_torch_export_unet_takes_padded_sizes(export_module, tmp_path: Path) -> None:
    """A U-Net's .pt2 takes multiples of 2^depth; the command's check pads its image to one."""
    net = make_checkpoint(tmp_path / "ckpt", "u", "G", "unet_128")
    report = export_module.main(["--name", "u", "--checkpoints_dir", str(tmp_path / "ckpt"), "--out",
                                 str(tmp_path / "out"), "--format", "export", "--check_size", "40"])
    assert [c["input_shape"] for c in report["checks"]["export"]] == [[1, 3, 256, 256]] * 2
    x = torch.rand(1, 3, 256, 384) * 2 - 1
    with torch.no_grad():
        assert float((run_program(report["files"]["export"], x) - net(x)).abs().max()) < TOLERANCE


def test_torchscript_and_onnx_still_selectable(export_module, tmp_path: Path) -> None:
    """--format torchscript,onnx writes those two and no .pt2."""
    pytest.importorskip("onnx", reason="onnx is in requirements-dev.txt")
    make_checkpoint(tmp_path / "ckpt", "exp", "G", "resnet_6blocks")
    report = export_module.main(["--name", "exp", "--checkpoints_dir", str(tmp_path / "ckpt"), "--out",
                                 str(tmp_path / "out"), "--format", "torchscript,onnx", "--check_size", "24",
                                 "--onnx_exporter", "legacy"])
    assert sorted(report["files"]) == ["onnx", "torchscript"]
    assert not list((tmp_path / "out").glob("*.pt2"))
