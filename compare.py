"""Compare several runs in one table: console, JSON and an HTML page with their images side by side and their loss
curves overlaid.

Each RUN is an experiment name (its loss record, config.json and best.json under --checkpoints_dir, its latest
results folder under --results_dir), a results folder written by test.py (results/<name>/test_latest) or an
experiment folder (checkpoints/<name>).

Examples:
  python compare.py horse2zebra_a horse2zebra_b --out compare/h2z --real_dir datasets/horse2zebra/testB
  python compare.py results/facades_a/test_latest results/facades_b/test_20 --out compare/facades
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from options.cli import OptionParser
from training.record import last_logged
from util.errors import InvalidInputError, MissingPathError, add_debug_flag, cli_main
from util.logger import get_logger, setup_logging
from util.loss_plot import DEFAULT_SMOOTHING, DPI, collect_series, smooth
from util.metrics import compute_metrics, parse_metric_names
from util.metrics.images import VISUAL_LABEL, load_images
from util.util import atomic_write_bytes, atomic_write_text
from util.visualizer import LOSS_LOG_JSONL, read_history

log = get_logger(__name__)

COMPARE_JSON = "compare.json"
PAGE = "index.html"
PAIRED_MODES = ("aligned", "colorization")  # dataset modes whose test visuals hold the ground truth
_COPIED = re.compile(r"\d{4}_\d{2}\.[A-Za-z]+")  # the page's copies of the images
_LABELLED = re.compile(r"^(?P<stem>.+?)_(?P<label>" + VISUAL_LABEL.pattern + r")$")
# One colour per run, the same in every plot (matplotlib's tab10).
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
          "#17becf")
PAGE_CSS = """
body { font-family: sans-serif; }
table.scores { border-collapse: collapse; margin-bottom: 1em; }
table.scores th, table.scores td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
table.scores td:first-child, table.scores th:first-child { text-align: left; }
div.row { display: flex; flex-wrap: wrap; gap: 4px; align-items: flex-start; }
div.cell { text-align: center; font-size: 0.8em; max-width: 100%; }
div.cell img { max-width: 100%; height: auto; image-rendering: pixelated; }
div.plots { display: flex; flex-wrap: wrap; gap: 8px; }
div.plots img { max-width: 100%; height: auto; }
"""


@dataclass
class Run:
    """One run: its label, its experiment folder (or None) and its results folder (or None)."""

    label: str
    given: str
    experiment: Optional[Path]
    results: Optional[Path]
    visuals: Dict[str, Dict[str, Path]] = field(default_factory=dict)  # label -> stem -> file

    def folders(self) -> List[Path]:
        """The run's own folders (nothing may be written inside them): also results/<name>, where a page written
        beside test_latest would be taken for the run's latest results."""
        folders = [p for p in (self.experiment, self.results) if p is not None]
        if self.results is not None and self.results.resolve().parent.name == self.label:
            folders.append(self.results.resolve().parent)
        return folders


def build_parser() -> OptionParser:
    """Command-line flags of compare.py (``@file`` arguments and "did you mean" from options/cli.py)."""
    p = OptionParser(description="Compare several runs: one table (console, JSON, HTML page with the images side by "
                                 "side and the loss curves overlaid).",
                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="RUN",
                   help="experiment name, results folder (results/<name>/test_latest) or experiment folder")
    p.add_argument("--out", required=True, help="folder for compare.json, index.html and the plots")
    p.add_argument("--checkpoints_dir", default="./checkpoints", help="where experiment names are looked up")
    p.add_argument("--results_dir", default="./results", help="where the results folders of experiment names are")
    p.add_argument("--metrics", default=None,
                   help="comma-separated metric names; default: psnr,ssim,l1 on paired runs, swd with --real_dir")
    p.add_argument("--real_dir", default=None,
                   help="real target-domain images to score every run's translated images against")
    p.add_argument("--size", type=int, default=None, help="resize every scored image to size x size")
    p.add_argument("--num_images", type=int, default=8, help="inputs shown side by side on the page")
    p.add_argument("--device", default="cpu", help="torch device for the metrics")
    add_debug_flag(p)
    return p


# ------------------------------------------------------------------------------------------------ finding runs
def _read_json(path: Path) -> Optional[Dict[str, Any]]:
    """A JSON object file, or None when absent or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_results_folder(folder: Path) -> bool:
    """True for a folder written by test.py (an ``images`` folder, with index.html or checkpoint.json)."""
    return (folder / "images").is_dir() and ((folder / "index.html").is_file() or (folder / "checkpoint.json").is_file())


def is_experiment_folder(folder: Path) -> bool:
    """True for a training run's folder (its loss record or config.json)."""
    return (folder / LOSS_LOG_JSONL).is_file() or (folder / "config.json").is_file()


def latest_results(folder: Path) -> Optional[Path]:
    """The most recently written results folder under results/<name> (None when there is none)."""
    if not folder.is_dir():
        return None
    found = [d for d in folder.iterdir() if d.is_dir() and is_results_folder(d)]
    return max(found, key=lambda d: ((d / "images").stat().st_mtime, d.name)) if found else None


def resolve_run(given: str, checkpoints_dir: Path, results_dir: Path) -> Run:
    """The run named by ``given``: a results folder, an experiment folder or an experiment name."""
    path = Path(given)
    if path.is_dir() and is_results_folder(path):
        record = _read_json(path / "checkpoint.json") or {}
        networks = record.get("networks") if isinstance(record.get("networks"), dict) else {}
        experiment = None
        for file in networks.values():
            if isinstance(file, str) and Path(file).parent.is_dir():
                experiment = Path(file).parent
                break
        name = str(record.get("name") or path.resolve().parent.name)
        if experiment is None and (checkpoints_dir / name).is_dir():
            experiment = checkpoints_dir / name
        return Run(name, given, experiment, path)
    if path.is_dir() and is_experiment_folder(path):
        name = path.resolve().name
        return Run(name, given, path, latest_results(results_dir / name))
    if "/" not in given and os.sep not in given and given not in ("", ".", ".."):
        experiment = checkpoints_dir / given
        results = latest_results(results_dir / given)
        if experiment.is_dir() or results is not None:
            return Run(given, given, experiment if experiment.is_dir() else None, results)
    raise MissingPathError(f"run {given!r} is neither an experiment in --checkpoints_dir {checkpoints_dir} (or with "
                           f"results in --results_dir {results_dir}) nor a results or experiment folder; pass an "
                           f"experiment name, results/<name>/test_latest or checkpoints/<name>")


def index_visuals(results: Path) -> Dict[str, Dict[str, Path]]:
    """The visuals of a results folder: label (fake_B, real_A ...) -> stem -> file; flat or one folder per label."""
    found: Dict[str, Dict[str, Path]] = {}
    images = results / "images"
    for entry in sorted(images.iterdir()):
        if entry.is_dir() and VISUAL_LABEL.fullmatch(entry.name):
            for file in sorted(entry.iterdir()):
                if file.is_file():
                    found.setdefault(entry.name, {})[file.stem] = file
        elif entry.is_file():
            match = _LABELLED.match(entry.stem)
            if match:
                found.setdefault(match.group("label"), {})[match.group("stem")] = entry
    return found


def fake_label(labels: Sequence[str]) -> Optional[str]:
    """The translated visual to score and show first: fake_B before the others (the usual target domain)."""
    fakes = sorted((x for x in labels if x.startswith("fake")), key=lambda x: (not x.startswith("fake_B"), x))
    return fakes[0] if fakes else None


def input_label(fake: str) -> str:
    """The visual a translated one was made from: fake_B <- real_A, fake_A <- real_B, fake <- real."""
    match = re.fullmatch(r"fake(?:_([AB]))?.*", fake)
    if match is None:
        return ""
    return "real" if match.group(1) is None else "real_" + ("A" if match.group(1) == "B" else "B")


# ------------------------------------------------------------------------------------------------ what a run says
def run_info(run: Run) -> Dict[str, Any]:
    """Model, dataset mode, epochs and iterations trained (from the loss record) and best.json of a run."""
    info: Dict[str, Any] = {"run": run.label, "given": run.given,
                            "experiment": str(run.experiment) if run.experiment else None,
                            "results": str(run.results) if run.results else None,
                            "model": None, "dataset_mode": None, "epoch": None, "total_iters": None, "best": None}
    if run.experiment is not None:
        options = (_read_json(run.experiment / "config.json") or {}).get("options")
        if isinstance(options, dict):
            info["model"], info["dataset_mode"] = options.get("model"), options.get("dataset_mode")
        logged = last_logged(str(run.experiment))
        if logged is not None:
            info["epoch"], info["total_iters"] = logged.epoch, logged.total_iters
        info["best"] = _read_json(run.experiment / "best.json")
    if info["model"] is None and run.results is not None:
        info["model"] = (_read_json(run.results / "checkpoint.json") or {}).get("model")
    return info


def score_run(run: Run, info: Dict[str, Any], opt: argparse.Namespace) -> Dict[str, Any]:
    """The metrics of a run's translated images: against --real_dir, or its own ground truth on paired data."""
    label = fake_label(list(run.visuals))
    if label is None:
        return {}
    fakes = run.visuals[label]
    stems = sorted(fakes)
    if opt.real_dir:
        names = parse_metric_names(opt.metrics) if opt.metrics else ["swd"]
        fake = load_images([fakes[s] for s in stems], opt.size)
        real = load_images(opt.real_dir, opt.size)
    elif info["dataset_mode"] in PAIRED_MODES and label.replace("fake", "real", 1) in run.visuals:
        names = parse_metric_names(opt.metrics) if opt.metrics else ["psnr", "ssim", "l1"]
        truth = run.visuals[label.replace("fake", "real", 1)]
        stems = [s for s in stems if s in truth]
        fake = load_images([fakes[s] for s in stems], opt.size)
        real = load_images([truth[s] for s in stems], opt.size)
    else:
        return {}
    if fake.shape[-2:] != real.shape[-2:]:
        raise InvalidInputError(f"run {run.label}: its {label} images are {fake.shape[-1]}x{fake.shape[-2]} but the "
                                f"real images are {real.shape[-1]}x{real.shape[-2]}; pass --size N to resize both")
    results = compute_metrics(names, fake, real, device=opt.device)
    return {k: (v if math.isfinite(v) else str(v)) for k, v in results.items()}


# ------------------------------------------------------------------------------------------------ checks
def check_runs(runs: Sequence[Run], out: Path) -> None:
    """One-line refusals: a run given twice, an --out inside a run's folder."""
    seen: Dict[str, str] = {}
    for run in runs:
        if run.label in seen:
            raise InvalidInputError(f"runs {seen[run.label]!r} and {run.given!r} are both experiment {run.label}; "
                                    f"give each run once")
        seen[run.label] = run.given
    target = out.resolve()
    for run in runs:
        for folder in run.folders():
            if target == folder.resolve() or folder.resolve() in target.parents:
                raise InvalidInputError(f"--out {out} is inside the folder {folder} of run {run.label}; choose a "
                                        f"folder outside every run (e.g. --out compare/{run.label})")


def common_stems(runs: Sequence[Run]) -> List[str]:
    """The input stems every run with results translated; refuses runs that share none."""
    with_results = [r for r in runs if r.results is not None]
    sets = {}
    for run in with_results:
        label = fake_label(list(run.visuals))
        if label is None:
            raise InvalidInputError(f"run {run.label}: its results folder {run.results} holds no translated images "
                                    f"(<stem>_fake*.png); run test.py for it again")
        sets[run.label] = set(run.visuals[label])
    if not sets:
        return []
    shared = set.intersection(*sets.values())
    if not shared:
        listing = "; ".join(f"{name}: {', '.join(sorted(s)[:3])}{' ...' if len(s) > 3 else ''}"
                            for name, s in sets.items())
        raise InvalidInputError(f"the results of runs {', '.join(sets)} share no input (file stems {listing}); "
                                f"compare results of the same test set")
    return sorted(shared)


# ------------------------------------------------------------------------------------------------ outputs
def loss_curves(runs: Sequence[Run]) -> Dict[str, Dict[str, List[Tuple[float, float]]]]:
    """loss name -> run label -> (x, y) points, from each run's loss record (x in epochs trained)."""
    curves: Dict[str, Dict[str, List[Tuple[float, float]]]] = {}
    for run in runs:
        if run.experiment is None:
            continue
        for name, points in collect_series(read_history(str(run.experiment / LOSS_LOG_JSONL))).items():
            curves.setdefault(name, {})[run.label] = points
    return curves


def draw_overlay(name: str, per_run: Dict[str, List[Tuple[float, float]]], colors: Dict[str, str]) -> bytes:
    """One PNG: the curve of loss ``name`` of every run, one colour each, with a legend of the run labels."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415 - only when a plot is drawn
    from matplotlib.figure import Figure  # noqa: PLC0415

    figure = Figure(figsize=(4.5, 3.0), dpi=DPI)
    FigureCanvasAgg(figure)
    ax = figure.add_subplot(1, 1, 1)
    for label, points in per_run.items():
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        marker = "o" if len(points) == 1 else None
        ax.plot(xs, ys, color=colors[label], alpha=0.25, linewidth=1, marker=marker)
        ax.plot(xs, smooth(ys, DEFAULT_SMOOTHING), color=colors[label], linewidth=1.6, marker=marker, label=label)
    ax.set_title(name, fontsize=10)
    ax.set_xlabel("epoch", fontsize=9)
    ax.grid(True, color="#e6e6e6", linewidth=0.8)
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _cell(value: Any) -> str:
    """A table cell: numbers with 4 decimals, nothing as '-'."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def best_text(best: Optional[Dict[str, Any]]) -> Optional[str]:
    """best.json as ``swd 12.3400 (epoch 5, iter 4000)``, or None."""
    if not best or "metric" not in best:
        return None
    value = best.get("value")
    return f"{best['metric']} {_cell(value)} (epoch {best.get('epoch', '?')}, iter {best.get('total_iters', '?')})"


def table_rows(rows: Sequence[Dict[str, Any]], metric_keys: Sequence[str]) -> Tuple[List[str], List[List[str]]]:
    """Header and cells of the comparison table."""
    header = ["run", "model", "epochs", "iters", *metric_keys, "best"]
    cells = [[row["run"], _cell(row["model"]), _cell(row["epoch"]), _cell(row["total_iters"]),
              *(_cell(row["metrics"].get(k)) for k in metric_keys), _cell(best_text(row["best"]))] for row in rows]
    return header, cells


def write_page(out: Path, payload: Dict[str, Any]) -> None:
    """DIR/index.html from the payload of compare.json: the table, the images side by side, the loss plots."""
    import dominate  # noqa: PLC0415
    from dominate.tags import div, h1, h3, img, meta, p, style, table, td, th, tr  # noqa: PLC0415

    header, cells = table_rows(payload["rows"], payload["metric_keys"])
    doc = dominate.document(title="Comparison of " + ", ".join(r["run"] for r in payload["rows"]))
    with doc.head:
        meta(name="viewport", content="width=device-width, initial-scale=1")
        style(PAGE_CSS)
    with doc:
        h1(doc.title, style="font-size: 1.4em;")
        with table(cls="scores"):
            with tr():
                for name in header:
                    th(name)
            for line in cells:
                with tr():
                    for value in line:
                        td(value)
        if payload["images"]:
            h3("images")
        for entry in payload["images"]:
            with div(cls="input"):
                p(entry["stem"], style="font-weight: bold; margin: 8px 0 2px;")
                with div(cls="row"):
                    for cell in entry["cells"]:
                        with div(cls="cell", data_run=cell["run"]):
                            img(src=cell["src"], alt=f"{cell['run']} {cell['label']}", style="width:192px")
                            p(f"{cell['run']}: {cell['label']}", style="margin: 2px 0;")
        if payload["plots"]:
            h3("losses")
        with div(cls="plots"):
            for plot in payload["plots"]:
                img(src=plot["file"], alt=f"loss {plot['loss']}: {', '.join(plot['runs'])}")
    atomic_write_text(out / PAGE, doc.render())


def compare(opt: argparse.Namespace) -> Dict[str, Any]:
    """Resolve the runs, score them, write compare.json, index.html and the loss plots; print the table."""
    if opt.num_images < 0:
        raise InvalidInputError(f"--num_images must be 0 or more, got {opt.num_images}")
    if opt.size is not None and opt.size < 1:
        raise InvalidInputError(f"--size must be 1 or more, got {opt.size}")
    if opt.real_dir and not Path(opt.real_dir).is_dir():
        raise MissingPathError(f"--real_dir {opt.real_dir} is not a folder; pass the real target-domain test images")
    if opt.metrics:
        parse_metric_names(opt.metrics)  # unknown names refused before any work
    out = Path(opt.out)
    runs = [resolve_run(given, Path(opt.checkpoints_dir), Path(opt.results_dir)) for given in opt.runs]
    check_runs(runs, out)
    for run in runs:
        if run.results is not None:
            run.visuals = index_visuals(run.results)
        else:
            log.warning(f"run {run.label}: no results folder (run test.py --name {run.label}); no images or metrics")
    stems = common_stems(runs)
    rows = []
    for run in runs:
        info = run_info(run)
        info["metrics"] = score_run(run, info, opt) if run.results is not None else {}
        rows.append(info)
    if not opt.real_dir and not any(r["metrics"] for r in rows):
        log.info("no metrics: pass --real_dir DIR (real target-domain images) to score unpaired runs")
    metric_keys = list(dict.fromkeys(k for r in rows for k in r["metrics"]))

    out.mkdir(parents=True, exist_ok=True)
    if (out / "images").is_dir():  # images of an earlier comparison in this folder
        for stale in (out / "images").iterdir():
            if _COPIED.fullmatch(stale.name):
                stale.unlink()
    images = []
    shown = [r for r in runs if r.results is not None]
    for index, stem in enumerate(stems[:opt.num_images]):
        source = input_label(fake_label(list(shown[0].visuals)) or "")
        labels = [(shown[0], "input", source)] if stem in shown[0].visuals.get(source, {}) else []
        labels += [(run, run.label, fake_label(list(run.visuals))) for run in shown]
        cells = []
        for number, (run, caption, label) in enumerate(labels):
            file = run.visuals[label][stem]
            target = Path("images") / f"{index:04d}_{number:02d}{file.suffix}"
            (out / "images").mkdir(exist_ok=True)
            shutil.copyfile(file, out / target)
            cells.append({"run": caption, "label": label, "src": target.as_posix(), "source": str(file)})
        images.append({"stem": stem, "cells": cells})

    colors = {run.label: COLORS[i % len(COLORS)] for i, run in enumerate(runs)}
    plots = []
    for number, (name, per_run) in enumerate(loss_curves(runs).items()):
        file = f"loss_{number:02d}_{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.png"
        atomic_write_bytes(out / file, draw_overlay(name, per_run, colors))
        plots.append({"loss": name, "file": file, "runs": list(per_run),
                      "curves": {label: [list(p) for p in points] for label, points in per_run.items()}})

    payload = {"rows": rows, "metric_keys": metric_keys, "real_dir": opt.real_dir, "stems": stems,
               "images": images, "plots": plots}
    atomic_write_text(out / COMPARE_JSON, json.dumps(payload, indent=2) + "\n")
    write_page(out, payload)
    header, cells = table_rows(rows, metric_keys)
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(header))]
    for line in [header, *cells]:
        log.info("  ".join(value.ljust(width) for value, width in zip(line, widths)).rstrip())
    log.info(f"written: {out / COMPARE_JSON}, {out / PAGE} ({len(images)} inputs side by side, {len(plots)} loss plots)")
    return payload


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Entry point: parse flags, set up console logging, compare (user errors raise ``UserError``)."""
    opt = build_parser().parse_args(argv)
    setup_logging()
    return compare(opt)


if __name__ == "__main__":
    sys.exit(cli_main(main))  # a user error: one "compare.py: error:" line, exit status 2
