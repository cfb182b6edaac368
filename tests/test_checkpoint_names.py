"""The checkpoint file names in one place (models/checkpoint_io.py): names, the load prefix, what is available."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from models import checkpoint_io
from models.checkpoint_io import CheckpointError


def test_names_and_prefix() -> None:
    assert checkpoint_io.net_filename("latest", "G_A") == "latest_net_G_A.pth"
    assert checkpoint_io.net_filename(5, "D") == "5_net_D.pth"
    assert checkpoint_io.net_path("ck/x", "iter_800", "G") == os.path.join("ck/x", "iter_800_net_G.pth")
    assert checkpoint_io.load_prefix(0, "latest") == "latest"
    assert checkpoint_io.load_prefix(0, 7) == "7"
    assert checkpoint_io.load_prefix(800, "latest") == "iter_800"


def test_available_prefixes_lists_regular_files_in_order(tmp_path: Path) -> None:
    for prefix in ("latest", "10", "2", "iter_400", "best", "iter_80"):
        (tmp_path / checkpoint_io.net_filename(prefix, "G")).write_bytes(b"x")
    (tmp_path / "3_net_G_A.pth").write_bytes(b"x")  # another network
    (tmp_path / ".latest_net_G.pth.0123456789abcdef0123456789abcdef.tmp").write_bytes(b"x")
    os.mkfifo(tmp_path / "4_net_G.pth")  # not loadable: not listed
    assert checkpoint_io.available_prefixes(tmp_path, "G") == ["2", "10", "iter_80", "iter_400", "best", "latest"]
    assert checkpoint_io.available_prefixes(tmp_path / "nope", "G") == []


def test_require_net_file_says_what_is_there(tmp_path: Path) -> None:
    (tmp_path / "latest_net_G.pth").write_bytes(b"x")
    assert checkpoint_io.require_net_file(tmp_path, "latest", "G") == str(tmp_path / "latest_net_G.pth")
    with pytest.raises(CheckpointError, match=r"checkpoint file not found: .*5_net_G\.pth; available for G: latest"):
        checkpoint_io.require_net_file(tmp_path, 5, "G")
    os.mkfifo(tmp_path / "6_net_G.pth")
    with pytest.raises(CheckpointError, match=r"6_net_G\.pth is a FIFO \(named pipe\), not a regular checkpoint"):
        checkpoint_io.require_net_file(tmp_path, 6, "G")
    os.symlink("/dev/zero", tmp_path / "7_net_G.pth")
    with pytest.raises(CheckpointError, match=r"7_net_G\.pth is a symbolic link to /dev/zero, a character device"):
        checkpoint_io.read_weights(tmp_path / "7_net_G.pth")
    with pytest.raises(CheckpointError, match=r"6_net_G\.pth is a FIFO"):
        checkpoint_io.check_regular_files(tmp_path, 6)
    checkpoint_io.check_regular_files(tmp_path, "latest")  # regular: no error
