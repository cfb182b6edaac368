"""Official-style checkpoints through the real scripts and test.py; --preprocess none at any size."""
from __future__ import annotations

import functools
import http.server
import os
import socket
import subprocess
import threading
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from PIL import Image

from models import networks

from conftest import ROOT, run_test


def legacy_resnet_checkpoint(path: Path, ngf: int = 8) -> None:
    """A pretrained-CycleGAN-style file: resnet_9blocks, instance norm, no dropout, pre-0.4 InstanceNorm keys."""
    torch.manual_seed(3)
    net = networks.define_G(3, 3, ngf, "resnet_9blocks", "instance", use_dropout=False)
    sd = OrderedDict()
    for name, m in net.named_modules():
        if isinstance(m, nn.InstanceNorm2d):
            sd[f"{name}.running_mean"] = torch.zeros(m.num_features)
            sd[f"{name}.running_var"] = torch.ones(m.num_features)
    sd.update(net.state_dict())
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(sd, path)


@pytest.fixture()
def model_server(tmp_path: Path):
    """A local HTTP server standing in for the model host (tests never reach the network)."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def run_script(script: str, *args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ROOT / "scripts" / script), *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=60)


@pytest.mark.parametrize("script", ["download_cyclegan_model.sh", "download_pix2pix_model.sh"])
def test_download_script_rejects_unknown_names(script: str) -> None:
    res = run_script(script, "horse2cat", env={})
    assert res.returncode == 1 and "Available models are" in res.stderr and "horse2cat" in res.stderr


def test_pretrained_cyclegan_download_then_test(tmp_path: Path, model_server, demo_root: Path) -> None:
    served, url = model_server
    legacy_resnet_checkpoint(served / "horse2zebra.pth")
    ckpt = tmp_path / "checkpoints"
    res = run_script("download_cyclegan_model.sh", "horse2zebra",
                     env={"MODEL_BASE_URL": url, "CHECKPOINTS_DIR": str(ckpt)})
    assert res.returncode == 0, res.stderr
    assert (ckpt / "horse2zebra_pretrained" / "latest_net_G.pth").is_file()
    assert not (ckpt / "horse2zebra_pretrained" / "config.json").exists()
    # the official command for pretrained CycleGAN models (the test model's netG/norm defaults match)
    web = Path(run_test(["--dataroot", str(demo_root / "demo" / "testA"), "--name", "horse2zebra_pretrained",
                         "--model", "test", "--no_dropout", "--checkpoints_dir", str(ckpt), "--ngf", "8",
                         "--results_dir", str(tmp_path / "res"), "--num_test", "2", "--gpu_ids", "-1"]))
    assert len(list((web / "images").glob("*_fake.png"))) == 2


def closed_port_url() -> str:
    """A local URL nothing listens on (connection refused, as when offline)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("script,name", [("download_cyclegan_model.sh", "horse2zebra"),
                                         ("download_pix2pix_model.sh", "edges2shoes")])
@pytest.mark.parametrize("failure", ["missing", "unreachable"])
def test_download_failure_leaves_nothing(script: str, name: str, failure: str, tmp_path: Path, model_server) -> None:
    """A failed download removes the folders it created (no empty checkpoints/<name>_pretrained/), and keeps
    what was there before: other models, and an earlier download of the same model."""
    _, url = model_server  # serves nothing: the model is missing
    env = {"MODEL_BASE_URL": url if failure == "missing" else closed_port_url()}
    ckpt = tmp_path / "checkpoints"
    res = run_script(script, name, env={**env, "CHECKPOINTS_DIR": str(ckpt)})
    assert res.returncode == 1 and "cannot download" in res.stderr
    assert not ckpt.exists()  # neither checkpoints/ nor checkpoints/<name>_pretrained/ is left

    (ckpt / "other").mkdir(parents=True)
    res = run_script(script, name, env={**env, "CHECKPOINTS_DIR": str(ckpt)})
    assert res.returncode == 1 and sorted(p.name for p in ckpt.iterdir()) == ["other"]

    earlier = ckpt / f"{name}_pretrained" / "latest_net_G.pth"
    earlier.parent.mkdir()
    earlier.write_bytes(b"earlier download")
    res = run_script(script, name, env={**env, "CHECKPOINTS_DIR": str(ckpt)})
    assert res.returncode == 1 and earlier.read_bytes() == b"earlier download"
    assert [p.name for p in earlier.parent.iterdir()] == ["latest_net_G.pth"]


def test_official_checkpoint_without_dropout_flag_names_it(tmp_path: Path, demo_root: Path) -> None:
    """The top official support question (#296, #461): forgetting --no_dropout gets a flag-naming error."""
    legacy_resnet_checkpoint(tmp_path / "ck" / "pre" / "latest_net_G.pth")
    with pytest.raises(Exception, match="--no_dropout"):
        run_test(["--dataroot", str(demo_root / "demo" / "testA"), "--name", "pre", "--model", "test",
                  "--checkpoints_dir", str(tmp_path / "ck"), "--ngf", "8", "--results_dir", str(tmp_path / "r"),
                  "--gpu_ids", "-1"])


@pytest.mark.parametrize("netG", networks.list_generators())
def test_preprocess_none_keeps_odd_sizes(netG: str, tmp_path: Path) -> None:
    """--preprocess none at test time: any input size, every generator, output of the input's size."""
    src = tmp_path / "odd"
    src.mkdir()
    sizes = {"a.png": (37, 53), "b.png": (70, 29)}
    for name, (w, h) in sizes.items():
        Image.new("RGB", (w, h), (200, 40, 90)).save(src / name)
    ckpt = tmp_path / "ck"
    torch.save(networks.define_G(3, 3, 4, netG, "batch", use_dropout=True).state_dict(),
               (ckpt / "n").mkdir(parents=True) or ckpt / "n" / "latest_net_G.pth")
    web = Path(run_test(["--dataroot", str(src), "--name", "n", "--model", "test", "--netG", netG, "--norm", "batch",
                         "--ngf", "4", "--preprocess", "none", "--checkpoints_dir", str(ckpt),
                         "--results_dir", str(tmp_path / "r"), "--gpu_ids", "-1"]))
    for name, size in sizes.items():
        stem = name[:-4]
        assert Image.open(web / "images" / f"{stem}_fake.png").size == size
        assert Image.open(web / "images" / f"{stem}_real.png").size == size


# ----------------------------------------------------------------------------------------------- CUT's models
def cut_models_tar(path: Path, names) -> None:
    """An archive laid out as the CUT repository's pretrained_models.tar: checkpoints/<name>/latest_net_G.pth
    (CUT-code generators, ``module.`` keys), plus a link entry that must never be unpacked."""
    import io
    import tarfile

    from test_cut_networks import cut_checkpoint

    with tarfile.open(path, "w") as tar:
        for name in names:
            buffer = io.BytesIO()
            torch.save({"module." + k: v for k, v in cut_checkpoint(6, False, False, ngf=4, seed=3).items()}, buffer)
            info = tarfile.TarInfo(f"checkpoints/{name}/latest_net_G.pth")
            info.size = len(buffer.getvalue())
            tar.addfile(info, io.BytesIO(buffer.getvalue()))
        link = tarfile.TarInfo(f"checkpoints/{names[0]}/evil.pth")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)


def test_cut_model_download_then_test(tmp_path: Path, model_server, demo_root: Path) -> None:
    served, url = model_server
    cut_models_tar(served / "pretrained_models.tar", ["horse2zebra_cut_pretrained", "horse2zebra_fastcut_pretrained"])
    ckpt = tmp_path / "checkpoints"
    env = {"MODEL_BASE_URL": url, "CHECKPOINTS_DIR": str(ckpt)}
    res = run_script("download_cut_model.sh", "horse2zebra_cut_pretrained", env=env)
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in ckpt.iterdir()) == ["horse2zebra_cut_pretrained"]  # only the one asked for
    assert sorted(p.name for p in (ckpt / "horse2zebra_cut_pretrained").iterdir()) == ["latest_net_G.pth"]  # no link
    web = Path(run_test(["--dataroot", str(demo_root / "demo" / "testA"), "--name", "horse2zebra_cut_pretrained",
                         "--checkpoints_dir", str(ckpt), "--results_dir", str(tmp_path / "r"), "--CUT_mode", "CUT",
                         "--netG", "resnet_6blocks", "--ngf", "4", "--dataset_mode", "single", "--load_size", "32",
                         "--crop_size", "32", "--num_test", "2", "--gpu_ids", "-1"]))
    assert len(list((web / "images" / "fake_B").iterdir())) == 2
    kept = ckpt / "horse2zebra_cut_pretrained" / "latest_net_G.pth"
    kept.write_bytes(b"a model of mine")
    res = run_script("download_cut_model.sh", "all", env=env)  # the archive lacks the cat2dog/cityscapes models
    assert res.returncode == 1 and "cat2dog_cut_pretrained" in res.stderr
    assert kept.read_bytes() == b"a model of mine" and (ckpt / "horse2zebra_fastcut_pretrained").is_dir()


def test_cut_model_download_failure_leaves_nothing(tmp_path: Path) -> None:
    ckpt = tmp_path / "checkpoints"
    res = run_script("download_cut_model.sh", "cat2dog_cut_pretrained",
                     env={"MODEL_BASE_URL": closed_port_url(), "CHECKPOINTS_DIR": str(ckpt)})
    assert res.returncode == 1 and "cannot download" in res.stderr and not ckpt.exists()
    res = run_script("download_cut_model.sh", "horse2cat", env={})
    assert res.returncode == 1 and "Available models are" in res.stderr and "horse2cat" in res.stderr
