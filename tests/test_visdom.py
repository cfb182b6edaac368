"""A real visdom server on 127.0.0.1: our Visualizer sends images and losses, and we read them back."""
from __future__ import annotations

import base64
import io
import json
import os
import socket
import subprocess
import sys
import time
import warnings

import pytest
from PIL import Image

pytest.importorskip("visdom", reason="visdom is not installed (the visdom extra; requirements-dev.txt)")

from test_visualizer import LOSSES, free_port, make_opt, make_visuals  # noqa: E402

from util.visualizer import Visualizer  # noqa: E402

SERVER_CODE = """
import sys
from visdom.server.run_server import start_server
# base_url='' skips the CDN download of the web client scripts; bind_local keeps it on 127.0.0.1
start_server(port=int(sys.argv[1]), base_url='', bind_local=True, env_path=sys.argv[2],
             print_func=lambda port: print('VISDOM READY', port, flush=True))
"""


@pytest.fixture
def visdom_server(tmp_path):
    """Start a visdom server in a subprocess on a free local port; always torn down."""
    port = free_port()
    env_path = tmp_path / "visdom_env"
    env_path.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", SERVER_CODE, str(port), str(env_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"visdom server exited early: {proc.stdout.read()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("visdom server did not start listening within 30 s")
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def _client(port: int):
    """A plain visdom client for reading back."""
    import visdom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return visdom.Visdom(server="http://127.0.0.1", port=port, use_incoming_socket=False, raise_exceptions=True)


def _window(client, win, env: str):
    """Return the stored JSON of one window."""
    data = json.loads(client.get_window_data(win=str(win), env=env))
    assert data, f"window {win} is empty"
    return data


@pytest.mark.parametrize("ncols", [2, 0])
def test_visualizer_sends_images_and_losses(tmp_path, visdom_server, ncols) -> None:
    """Grid + label table (ncols > 0) or one window per visual (ncols 0), and the loss line plot."""
    port = visdom_server
    env = f"test_env_{ncols}"
    opt = make_opt(tmp_path, display_id=1, display_port=port, display_server="http://127.0.0.1",
                   display_env=env, display_ncols=ncols)
    v = Visualizer(opt)
    assert v.visdom is not None and v.visdom.connected
    visuals = make_visuals()
    v.display_current_results(visuals, 1, 10, False)
    for i in range(3):
        v.plot_current_losses(1, i / 3, {k: val + i for k, val in LOSSES.items()}, 10 * i)
    v.close()

    client = _client(port)
    if ncols > 0:
        assert client.win_exists("2", env=env) and client.win_exists("3", env=env)
        grid = _window(client, 2, env)
        assert grid["type"] == "image" and grid["title"] == "exp images"
        assert grid["content"]["src"].startswith("data:image/png;base64,")
        png = base64.b64decode(grid["content"]["src"].split(",", 1)[1])
        with Image.open(io.BytesIO(png)) as im:
            assert im.size == (2 * (32 + 4), 2 * (32 + 4))  # 2 x 2 tiles of 32 px with padding 2
        table = _window(client, 3, env)
        assert table["type"] == "text" and table["title"] == "exp labels"
        for label in visuals:
            assert f"<td>{label}</td>" in table["content"]
        assert table["content"].count("<tr>") == 2  # 4 visuals in rows of 2
    else:
        for idx, label in enumerate(visuals, start=1):
            window = _window(client, 1 + idx, env)
            assert window["type"] == "image" and window["title"] == label

    plot = _window(client, 1, env)
    assert plot["type"] == "plot" and plot["title"] == "exp loss over time"
    assert plot["content"]["layout"]["xaxis"]["title"] == "epoch"
    assert plot["content"]["layout"]["yaxis"]["title"] == "loss"
    traces = {trace["name"]: trace for trace in plot["content"]["data"]}
    assert set(traces) == set(LOSSES)
    assert traces["G_A"]["x"] == pytest.approx([0.0, 1 / 3, 2 / 3])
    assert traces["G_A"]["y"] == pytest.approx([1.5, 2.5, 3.5])


def test_server_going_away_mid_run_warns_once(tmp_path, visdom_server) -> None:
    """If the server disappears after connecting, later calls fail quietly after one warning."""
    import logging

    from util import visualizer as vis_mod

    records = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    vis_mod.log.addHandler(handler)
    try:
        opt = make_opt(tmp_path, display_id=1, display_port=visdom_server, display_server="http://127.0.0.1",
                       display_env="gone")
        v = Visualizer(opt)
        assert v.visdom.connected
        v.visdom.port = free_port()  # simulate the server vanishing: requests now go nowhere
        v.visdom.vis.port = v.visdom.port
        for i in range(3):
            v.display_current_results(make_visuals(), 1, i, False)
            v.plot_current_losses(1, i / 3, LOSSES, i)
        v.close()
    finally:
        vis_mod.log.removeHandler(handler)
    warnings = [r.getMessage() for r in records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "training continues without visdom" in warnings[0]
    assert not v.visdom.connected
    assert os.path.exists(tmp_path / "checkpoints" / "exp" / "loss_log.jsonl")
