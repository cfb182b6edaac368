"""Training reports: console/loss_log.txt lines, JSON-lines loss log, loss plot, training web page, visdom windows,
optional W&B / TensorBoard loggers; plus ``save_images`` for the test results page.

Only rank 0 (``opt.rank``, default 0) writes files or talks to servers. visdom is imported only when
``--display_id > 0``; a server that cannot be reached costs one warning and the run goes on without it.

One history across resumes: every session first appends a marker line ``{"session": "fresh"|"resume", "epoch": E,
"total_iters": T, "time": ...}`` to loss_log.jsonl (E, T: where the session starts). ``read_history`` replays
the file: a fresh start drops everything before it; a resume keeps the earlier records at or before its start,
ordered by (epoch, total_iters), so records that an interrupted session wrote after the checkpoint it is resumed
from (they are trained again) appear once. The file itself is append-only: nothing written is ever removed.
"""
from __future__ import annotations

import json
import logging
import math
import ntpath
import os
import socket
import time
import warnings
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union
from urllib.parse import urlparse

import numpy as np

from util import util
from util.html import HTML
from util.logger import get_logger
from util.loss_plot import position, render_loss_plot
from util.result_names import fit_stem
from util.trackers import TensorBoardLogger, WandbLogger

log = get_logger(__name__)

CONNECT_TIMEOUT = 2.0  # seconds to open the TCP connection to the visdom server
REQUEST_TIMEOUT = 10.0  # seconds for one visdom request (an image grid can be a few MB)
LOSS_PLOT = "loss_plot.png"
METRICS_PLOT = "metrics_plot.png"
LOSS_LOG_JSONL = "loss_log.jsonl"  # one record per line: losses, metrics and session markers
# Seconds between redraws of a plot during training: one draw of the 8 cycle_gan panels took 0.3-1.3 s on a busy
# 2-core CPU (python bench/plot_draw.py), too much to pay at every --print_freq.
PLOT_INTERVAL = 10.0


def _read_jsonl(path: str) -> List[Dict[str, Any]]:
    """Every record line of ``path`` (none when it is absent).

    A damaged line (cut short by a crash, bytes that are not UTF-8, not a JSON object, a non-numeric epoch or
    total_iters) is skipped with one warning naming the file and the lines: it never stops a resume.
    """
    if not os.path.exists(path):
        return []
    records: List[Dict[str, Any]] = []
    damaged: List[int] = []
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            try:
                record = json.loads(raw.decode("utf-8"))
                if not isinstance(record, dict):
                    raise ValueError("not a JSON object")
                record_order(record)  # epoch and total_iters must be numbers
            except (UnicodeDecodeError, ValueError, TypeError):
                damaged.append(number)
                continue
            records.append(record)
    if damaged:
        shown = ", ".join(map(str, damaged[:10])) + (", ..." if len(damaged) > 10 else "")
        log.warning("%s: skipped %d damaged line(s) (line %s)", path, len(damaged), shown)
    return records


def record_order(record: Mapping[str, Any]) -> tuple:
    """Training order of a record or session start: (epoch, total_iters).

    The epoch comes first because a weights-only resume (no training state) restarts total_iters at 0.
    """
    return int(record.get("epoch", 0) or 0), int(record.get("total_iters", 0) or 0)


def replay_history(records: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """Apply the session markers in file order; return the records of the run's one history (see module doc)."""
    kept: List[Dict[str, Any]] = []
    for record in records:
        if "session" in record:
            start = record_order(record) if record["session"] == "resume" else (-1, -1)
            kept = [r for r in kept if record_order(r) <= start]
        else:
            kept.append(dict(record))
    return kept


def read_history(path: str) -> List[Dict[str, Any]]:
    """The records of a loss_log.jsonl that make up the run's history across resumes (see module doc)."""
    return replay_history(_read_jsonl(path))


def last_logged_step(records: Sequence[Mapping[str, Any]]) -> int:
    """The highest total_iters logged since the last fresh start, superseded records included (0 if none)."""
    last = 0
    for record in records:
        if record.get("session") == "fresh":
            last = 0
        elif "session" not in record:
            last = max(last, int(record.get("total_iters", 0) or 0))
    return last


def direction_rows(labels: Sequence[str]) -> List[int]:
    """Images per page row for one input's visuals: a row per direction when there are several.

    A row starts at each ``real_*`` visual (a model lists a direction's visuals from its real input on:
    cycle_gan's ``real_A fake_B rec_A idt_B | real_B fake_A rec_B idt_A``) when the row before it and the new row
    both hold two images or more: pix2pix's ``real_A fake_B real_B`` (real_B is the target) and colorization's
    ``real_A real_B_rgb fake_B_rgb`` stay one row.
    """
    rows: List[int] = []
    for index, label in enumerate(labels):
        new_row = (index > 0 and label.startswith("real_") and rows[-1] >= 2
                   and index + 1 < len(labels) and not labels[index + 1].startswith("real_"))
        if not rows or new_row:
            rows.append(0)
        rows[-1] += 1
    return rows


def _finite_or_none(value: Any) -> Optional[float]:
    """Return value as float, or None when it is NaN/inf (keeps the JSON log strict)."""
    number = float(value)
    return number if math.isfinite(number) else None


class _DropVisdomChatter(logging.Filter):
    """Hide visdom's own set-up warnings (new session, no incoming socket) while we connect."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Let only errors through."""
        return record.levelno >= logging.ERROR


def _make_visdom_client(server: str, port: int, env: str) -> Any:
    """Create a visdom client whose HTTP requests time out and whose errors raise (never print)."""
    import visdom  # noqa: PLC0415 - only when --display_id > 0

    class _TimeoutVisdom(visdom.Visdom):
        """visdom client with a timeout on every request."""

        def _handle_post(self, url: str, data: Any = None) -> str:
            """POST with a timeout (the stock client waits forever)."""
            response = self.session.post(url, data=data if data is not None else {}, timeout=REQUEST_TIMEOUT)
            return response.text

    chatter = _DropVisdomChatter()
    visdom_logger = logging.getLogger("visdom")
    visdom_logger.addFilter(chatter)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # visdom's own use of logger.warn
            return _TimeoutVisdom(server=server, port=port, env=env, raise_exceptions=True, use_incoming_socket=False)
    finally:
        visdom_logger.removeFilter(chatter)


class VisdomDisplay:
    """The official visdom windows (image grid + label table, or one window per visual; loss line plot)."""

    def __init__(self, server: str, port: int, env: str, display_id: int, ncols: int, name: str) -> None:
        """Remember the connection settings; call ``connect()`` to open it."""
        self.server, self.port, self.env = server, int(port), env
        self.display_id, self.ncols, self.name = int(display_id), int(ncols), name
        self.vis: Any = None
        self.warned = False
        self.plot_data: Dict[str, Dict[str, Any]] = {}

    @property
    def address(self) -> str:
        """Server address as shown to users."""
        return f"{self.server}:{self.port}"

    def _disable(self, message: str) -> None:
        """Log one warning (for the whole run) and stop using visdom."""
        self.vis = None
        if not self.warned:
            self.warned = True
            log.warning(message)

    def connect(self) -> bool:
        """Connect with a short timeout; on failure warn once and stay disabled (never launches a server)."""
        hint = (f"training continues without it; start one with `python -m visdom.server -p {self.port}` "
                f"or pass --display_id 0")
        try:
            parsed = urlparse(self.server if "://" in self.server else f"http://{self.server}")
            host = parsed.hostname or "localhost"
            with socket.create_connection((host, self.port), timeout=CONNECT_TIMEOUT):
                pass
            vis = _make_visdom_client(self.server, self.port, self.env)
            if not vis.check_connection():
                raise ConnectionError("the server did not answer")
        except ImportError:
            self._disable("--display_id > 0 needs the 'visdom' package (pip install -e '.[visdom]', see "
                          f"docs/install.md); {hint}")
            return False
        except Exception as error:  # noqa: BLE001 - any failure means: no visdom for this run
            self._disable(f"Could not connect to visdom server at {self.address} ({error}); {hint}")
            return False
        self.vis = vis
        return True

    @property
    def connected(self) -> bool:
        """True while visdom is in use."""
        return self.vis is not None

    def _guard(self, action: str, func: Any, *args: Any, **kwargs: Any) -> None:
        """Run one visdom call; any error disables visdom with one warning."""
        if self.vis is None:
            return
        try:
            func(*args, **kwargs)
        except Exception as error:  # noqa: BLE001
            self._disable(f"visdom server at {self.address} failed while {action} ({error}); "
                          f"training continues without visdom")

    def show_images(self, images: "OrderedDict[str, np.ndarray]") -> None:
        """Send the visuals: one grid window + label table (ncols > 0) or one window per visual (ncols == 0)."""
        if self.vis is None or not images:
            return
        shapes = {im.shape for im in images.values()}
        if self.ncols > 0 and len(shapes) == 1:
            self._guard("sending images", self._show_grid, images)
        else:
            self._guard("sending images", self._show_each, images)

    def _show_grid(self, images: "OrderedDict[str, np.ndarray]") -> None:
        """Grid window display_id+1 (white padding tiles) and label table window display_id+2."""
        ncols = min(self.ncols, len(images))
        chw = [im.transpose(2, 0, 1) for im in images.values()]
        labels = list(images)
        white = np.full_like(chw[0], 255)
        while len(chw) % ncols:
            chw.append(white)
            labels.append("")
        rows = ["".join(f"<td>{label}</td>" for label in labels[i:i + ncols]) for i in range(0, len(labels), ncols)]
        h, w = chw[0].shape[1:]
        css = ("<style>table {border-collapse: separate; border-spacing: 4px; white-space: nowrap; text-align: center}"
               f" table td {{width: {w}px; height: {h}px; padding: 4px; outline: 4px solid black}}</style>")
        table_html = "<table>" + "".join(f"<tr>{row}</tr>" for row in rows) + "</table>"
        self.vis.images(chw, nrow=ncols, win=self.display_id + 1, padding=2, opts=dict(title=self.name + " images"))
        self.vis.text(css + table_html, win=self.display_id + 2, opts=dict(title=self.name + " labels"))

    def _show_each(self, images: "OrderedDict[str, np.ndarray]") -> None:
        """One window per visual: display_id + 1, display_id + 2, ..."""
        for idx, (label, image) in enumerate(images.items(), start=1):
            self.vis.image(image.transpose(2, 0, 1), opts=dict(title=label), win=self.display_id + idx)

    def plot(self, key: str, x: float, values: Mapping[str, Optional[float]], win: Union[int, str],
             title: str, ylabel: str) -> None:
        """Append a point per series and redraw the line plot in window ``win`` (x label: epoch)."""
        if self.vis is None:
            return
        data = self.plot_data.setdefault(key, {"X": [], "Y": [], "legend": []})
        for name in values:
            if name not in data["legend"]:
                data["legend"].append(name)
                for row in data["Y"]:
                    row.append(float("nan"))
        data["X"].append(float(x))
        data["Y"].append([float("nan") if values.get(n) is None else float(values[n]) for n in data["legend"]])
        legend = data["legend"]
        xs = np.stack([np.array(data["X"])] * len(legend), 1)
        ys = np.array(data["Y"])
        if len(legend) == 1:
            xs, ys = xs[:, 0], ys[:, 0]
        self._guard("plotting " + key, self.vis.line, X=xs, Y=ys, win=win,
                    opts=dict(title=title, legend=list(legend), xlabel="epoch", ylabel=ylabel))


class Visualizer:
    """Reports of a training run: console + loss_log.txt, loss_log.jsonl, loss plot, web page, visdom, loggers."""

    def __init__(self, opt: Any, resume: Any = None) -> None:
        """Set up the outputs enabled by the options (see module docstring).

        ``resume``: where this session starts, anything with ``epoch`` and ``total_iters`` (train.py passes its
        ``training_state.ResumePoint``). With ``--continue_train`` and ``total_iters`` > 0 (an exact resume),
        the plot, the history, TensorBoard and W&B continue from there; without it the session is taken to
        start at ``--epoch_count`` with total_iters 0, i.e. a weights-only resume.
        """
        self.opt = opt
        self.name: str = opt.name
        self.rank = int(opt.rank)
        self.is_main = self.rank == 0
        self.display_id = int(opt.display_id)
        self.win_size = int(opt.display_winsize)
        self.use_html = bool(opt.isTrain) and not opt.no_html
        self.smoothing = float(opt.plot_smoothing)
        self.plot_interval = PLOT_INTERVAL
        self._drawn_at: Dict[str, float] = {}  # plot file -> time.monotonic() of its last draw
        self._pending: Dict[str, tuple] = {}  # plot file -> (key, title) of a draw put off by plot_interval
        self.saved = False
        self.expr_dir = os.path.join(opt.checkpoints_dir, opt.name)
        self.log_name = os.path.join(self.expr_dir, "loss_log.txt")
        self.jsonl_name = os.path.join(self.expr_dir, LOSS_LOG_JSONL)
        self.web_dir = os.path.join(self.expr_dir, "web")
        self.img_dir = os.path.join(self.web_dir, "images")
        self.records: List[Dict[str, Any]] = []
        self.labels: List[str] = []
        self._page_epoch: Optional[int] = None
        self.visdom: Optional[VisdomDisplay] = None
        self.loggers: List[Any] = []
        if not self.is_main:
            return

        util.mkdirs(self.expr_dir)
        resumed = bool(opt.continue_train)
        start_epoch = int(getattr(resume, "epoch", opt.epoch_count))
        start_iters = int(getattr(resume, "total_iters", 0)) if resumed else 0
        earlier = _read_jsonl(self.jsonl_name) if resumed else []
        exact = resumed and start_iters > 0  # total_iters (the loggers' step) continues from the checkpoint
        marker = {"session": "resume" if resumed else "fresh", "epoch": start_epoch, "total_iters": start_iters,
                  "time": time.time()}
        self._start_session(marker)
        self.records = replay_history(earlier + [marker])
        if self.display_id > 0:
            self.visdom = VisdomDisplay(opt.display_server, opt.display_port, opt.display_env, self.display_id,
                                        opt.display_ncols, self.name)
            self.visdom.connect()
        if self.use_html:
            log.info("create web directory %s...", self.web_dir)
            util.mkdirs([self.web_dir, self.img_dir])
        if opt.use_wandb:
            self.loggers.append(WandbLogger(opt, skip_through=last_logged_step(earlier) if exact else None))
        if opt.use_tensorboard:
            self.loggers.append(TensorBoardLogger(opt, purge_step=start_iters + 1 if exact else None))
        util.append_text(self.log_name, "================ Training Loss (%s) ================\n" % time.strftime("%c"))

    # ------------------------------------------------------------------ helpers
    def _start_session(self, marker: Mapping[str, Any]) -> None:
        """Append the session marker (on a line of its own, even after a line cut short by a crash)."""
        if os.path.exists(self.jsonl_name) and os.path.getsize(self.jsonl_name) > 0:
            with open(self.jsonl_name, "rb") as handle:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":
                    util.append_text(self.jsonl_name, "\n")
        util.append_text(self.jsonl_name, json.dumps(marker) + "\n")

    def _append_record(self, record: Dict[str, Any]) -> None:
        """Keep a record in memory and append it as one JSON line."""
        self.records.append(record)
        util.append_text(self.jsonl_name, json.dumps(record, allow_nan=False) + "\n")

    def _plot_path(self, file_name: str) -> str:
        """Path of a plot image inside the web folder."""
        return os.path.join(self.web_dir, file_name)

    def _render_plot(self, key: str, file_name: str, title: str, force: bool = False) -> None:
        """Redraw one plot PNG (at most every ``plot_interval`` s unless forced; ``close`` draws what is left);
        rebuild the page when the plot appears for the first time."""
        last = self._drawn_at.get(file_name)
        if not force and last is not None and time.monotonic() - last < self.plot_interval:
            self._pending[file_name] = (key, title)
            return
        self._pending.pop(file_name, None)
        path = self._plot_path(file_name)
        existed = os.path.exists(path)
        # metrics are few, costly points that pick the best checkpoint: drawn as measured, never averaged
        smoothing = self.smoothing if key == "losses" else 0.0
        render_loss_plot([r for r in self.records if key in r], path, key=key, title=title, smoothing=smoothing)
        self._drawn_at[file_name] = time.monotonic()
        if not existed and self._page_epoch is not None:
            self._write_page(self._page_epoch)

    def _write_page(self, epoch: int) -> None:
        """Rebuild web/index.html: plots on top, then for epoch..1 a header and one row of that epoch's images."""
        self._page_epoch = epoch
        webpage = HTML(self.web_dir, "Experiment name = %s" % self.name, refresh=1)
        if os.path.exists(self._plot_path(LOSS_PLOT)):
            webpage.add_figure(LOSS_PLOT, "losses (numbers: ../loss_log.jsonl)")
        if os.path.exists(self._plot_path(METRICS_PLOT)):
            webpage.add_figure(METRICS_PLOT, "evaluation metrics")
        present = set(os.listdir(self.img_dir))
        for n in range(epoch, 0, -1):
            names = ["epoch%.3d_%s.png" % (n, label) for label in self.labels]
            shown = [(name, label) for name, label in zip(names, self.labels) if name in present]
            if not shown:  # e.g. epochs before --epoch_count of a resumed run: no broken images
                continue
            webpage.add_header("epoch [%d]" % n)
            ims, txts = [name for name, _ in shown], [label for _, label in shown]
            webpage.add_images(ims, txts, ims, width=self.win_size, row_sizes=direction_rows(txts))
        webpage.save()

    # ------------------------------------------------------------------ official API
    def reset(self) -> None:
        """Start of an epoch: the next display saves its images to the page."""
        self.saved = False

    def display_current_results(self, visuals: Mapping[str, Any], epoch: int, total_iters: int = 0,
                                save_result: bool = False) -> None:
        """Show visuals in visdom and the loggers; save them to the web page when asked or once per epoch."""
        if isinstance(total_iters, bool):  # the [<=2024] call display_current_results(visuals, epoch, save_result)
            total_iters, save_result = 0, total_iters
        if not self.is_main:
            return
        images = OrderedDict((label, util.tensor2im(image)) for label, image in visuals.items())
        if self.visdom is not None:
            self.visdom.show_images(images)
        for logger in self.loggers:
            logger.log_images(images, total_iters)
        if self.use_html and (save_result or not self.saved):
            self.saved = True
            for label, image in images.items():
                util.save_image(image, os.path.join(self.img_dir, "epoch%.3d_%s.png" % (epoch, label)))
            for label in images:
                if label not in self.labels:
                    self.labels.append(label)
            self._write_page(epoch)

    def plot_current_losses(self, epoch: int, counter_ratio: float, losses: Mapping[str, float],
                            total_iters: int = 0) -> None:
        """Record the losses at x = epoch - 1 + counter_ratio (epochs trained: epoch 1 ends at 1.0): JSON line,
        visdom plot, loggers, web/loss_plot.png."""
        if not self.is_main:
            return
        values = OrderedDict((k, _finite_or_none(v)) for k, v in losses.items())
        record = {"epoch": int(epoch), "counter_ratio": float(counter_ratio), "x": position(epoch, counter_ratio),
                  "total_iters": int(total_iters), "time": time.time(), "losses": values}
        self._append_record(record)
        if self.visdom is not None:
            self.visdom.plot("losses", record["x"], values, self.display_id,
                             title=self.name + " loss over time", ylabel="loss")
        finite = {k: v for k, v in values.items() if v is not None}
        for logger in self.loggers:
            logger.log_scalars(finite, total_iters)
        if self.use_html:
            self._render_plot("losses", LOSS_PLOT, self.name + " loss over time")

    def print_current_losses(self, epoch: int, iters: int, losses: Mapping[str, float], t_comp: float,
                             t_data: float) -> None:
        """Log the official loss line and append it to loss_log.txt."""
        if not self.is_main:
            return
        message = "(epoch: %d, iters: %d, time: %.3f, data: %.3f) " % (epoch, iters, t_comp, t_data)
        for k, v in losses.items():
            message += "%s: %.3f " % (k, v)
        log.info(message)
        util.append_text(self.log_name, "%s\n" % message)

    def log_metrics(self, epoch: int, total_iters: int, metrics: Mapping[str, float],
                    counter_ratio: float = 0.0) -> None:
        """Record evaluation metrics (FID, ...) at x = epoch - 1 + counter_ratio, as the losses: console line, JSON line,
        loggers, visdom, web/metrics_plot.png."""
        if not self.is_main:
            return
        values = OrderedDict((k, _finite_or_none(v)) for k, v in metrics.items())
        record = {"epoch": int(epoch), "counter_ratio": float(counter_ratio), "x": position(epoch, counter_ratio),
                  "total_iters": int(total_iters), "time": time.time(), "metrics": values}
        self._append_record(record)
        message = "(epoch: %d, total_iters: %d) metrics: " % (epoch, total_iters)
        message += "".join("%s: %.4f " % (k, float(v)) for k, v in metrics.items())
        log.info(message)
        if self.visdom is not None:
            self.visdom.plot("metrics", record["x"], values, "%d_metrics" % self.display_id,
                             title=self.name + " metrics", ylabel="metric")
        finite = {"metrics/" + k: v for k, v in values.items() if v is not None}
        for logger in self.loggers:
            logger.log_scalars(finite, total_iters)
        if self.use_html:
            self._render_plot("metrics", METRICS_PLOT, self.name + " metrics")

    def close(self) -> None:
        """Draw the plots put off by ``plot_interval``, close the loggers and stop using visdom."""
        for file_name, (key, title) in list(self._pending.items()):
            self._render_plot(key, file_name, title, force=True)
        for logger in self.loggers:
            logger.close()
        self.loggers = []
        if self.visdom is not None:
            self.visdom.vis = None


def save_images(webpage: HTML, visuals: Mapping[str, Any], image_path: Union[str, Sequence[str]],
                aspect_ratio: float = 1.0, width: int = 256, use_wandb: bool = False,
                name: Optional[str] = None, by_visual: bool = False) -> None:
    """Save one input's visuals as ``images/<stem>_<label>.png`` (``by_visual``: ``images/<label>/<stem>.png``,
    one folder per visual) and add an h3 header plus one row to the page (one per direction: ``direction_rows``).

    ``<stem>`` is ``name`` when given (test.py's unique names, util/result_names.py), else the input's file stem;
    one too long for the file system is shortened (``fit_stem``).
    """
    first = image_path if isinstance(image_path, str) else image_path[0]
    if name is None:
        name = os.path.splitext(ntpath.basename(os.fspath(first)))[0]
    name = fit_stem(name, max(("_%s.png" % label for label in visuals), key=len, default=".png"))
    image_dir = webpage.get_image_dir()
    webpage.add_header(name)
    ims, txts, links = [], [], []
    arrays = OrderedDict()
    for label, im_data in visuals.items():
        image = util.tensor2im(im_data)
        if by_visual:
            util.mkdirs(os.path.join(image_dir, label))
            image_name = "%s/%s.png" % (label, name)
        else:
            image_name = "%s_%s.png" % (name, label)
        util.save_image(image, os.path.join(image_dir, image_name), aspect_ratio=aspect_ratio)
        ims.append(image_name)
        txts.append(label)
        links.append(image_name)
        arrays[label] = image
    webpage.add_images(ims, txts, links, width=width, row_sizes=direction_rows(txts))  # a row per direction
    if use_wandb:
        try:
            import wandb  # noqa: PLC0415 - only with --use_wandb
        except ImportError as error:
            raise RuntimeError("--use_wandb needs the 'wandb' package: pip install wandb (or drop --use_wandb)") from error
        if wandb.run is not None:
            wandb.run.log({label: wandb.Image(image) for label, image in arrays.items()})
