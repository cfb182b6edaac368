"""Translate test images with a trained model and write a results page.

Example:
    python test.py --dataroot ./datasets/maps --name maps_cyclegan --model cycle_gan
    python test.py --dataroot datasets/horse2zebra/testA --name horse2zebra_pretrained --model test --no_dropout
Results: ``<results_dir>/<name>/<phase>_<epoch>/index.html``. See docs/testing.md. A user's mistake (missing
checkpoint, bad data, ...) ends with one ``test.py: error:`` line and exit status 2 (``--debug``: traceback).
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence

import torch

from data import create_dataset
from models import checkpoint_io
from options.base_options import options_file, write_options_file
from options.pretrained import load_model
from options.test_options import TestOptions
from models.checkpoint_io import CheckpointError
from training.checkpoints import load_prefix, read_state, state_path
from training.evaluator import BEST_FILE, BEST_PREFIX, read_best_record
from training.record import checkpoint_origin
from training.signals import GracefulStop, signal_name
from util import html
from util.errors import UserError, cli_main, one_line, write_error
from util.governor import start_governor
from util.logger import get_logger, setup_logging
from util.progress import Progress
from util.result_names import ResultNames
from util.seed import seed_everything
from util.threads import limit_torch_threads
from util.util import atomic_write_text
from util.visualizer import save_images

log = get_logger("test")

RECORD_FILE = "checkpoint.json"  # in the results folder: the checkpoint the results come from


def split_visuals(visuals: "OrderedDict[str, Any]", index: int) -> "OrderedDict[str, Any]":
    """The visuals of one item of a batch (tensors are sliced; numpy visuals belong to the first item)."""
    return OrderedDict((k, v[index:index + 1] if isinstance(v, torch.Tensor) else v) for k, v in visuals.items())


def results_dir(opt) -> str:
    """``<results_dir>/<name>/<phase>_<epoch>[_iter<load_iter>][<model_suffix>]``: ``--model test`` with
    ``--model_suffix _A`` and ``_B`` load different generators, so each gets its own folder (``test_latest_A``)."""
    web_dir = os.path.join(opt.results_dir, opt.name, "{}_{}".format(opt.phase, opt.epoch))
    if opt.load_iter > 0:
        web_dir = "{:s}_iter{:d}".format(web_dir, opt.load_iter)
    return web_dir + (opt.model_suffix if opt.model == "test" else "")


def checkpoint_record(opt: Any, model: Any) -> Dict[str, Any]:
    """What the results were made with: the network files and when they were saved (epoch, total_iters and time
    from the training state beside them; ``--epoch best``: from best.json). Unknown values are None, with a note."""
    prefix = load_prefix(opt)
    record: Dict[str, Any] = {
        "name": opt.name, "model": opt.model, "epoch": opt.epoch, "load_iter": opt.load_iter, "prefix": prefix,
        "networks": {name: os.path.abspath(checkpoint_io.net_path(model.save_dir, prefix, name))
                     for name in model.model_names},
        "trained_epoch": None, "epoch_complete": None, "total_iters": None, "saved_at": None, "note": ""}
    best = os.path.join(model.save_dir, BEST_FILE)
    if prefix == BEST_PREFIX and os.path.isfile(best):
        try:
            entry = read_best_record(Path(best))
        except UserError as exc:
            record["note"] = f"{BEST_FILE} cannot be read: {one_line(str(exc))}"
            return record
        saved = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.path.getmtime(best)))
        value = entry["value"] if math.isfinite(entry["value"]) else str(entry["value"])
        record.update(trained_epoch=entry.get("epoch"), total_iters=entry.get("total_iters"), saved_at=saved,
                      best={"metric": entry["metric"], "value": value})
        return record
    path = state_path(model.save_dir, prefix)
    if not os.path.isfile(path):
        record["note"] = f"no training state {os.path.basename(path)} beside the checkpoint (e.g. an official one)"
        return record
    try:
        state = read_state(path)
    except CheckpointError as exc:
        record["note"] = one_line(str(exc))
        return record
    record.update(trained_epoch=int(state["epoch"]), epoch_complete=bool(state.get("epoch_complete")),
                  total_iters=int(state["total_iters"]), saved_at=state.get("saved_at"))
    return record


def describe_record(record: Dict[str, Any]) -> str:
    """``checkpoint latest: epoch 3 (complete), total_iters 1200, saved 2025-01-01 12:00:00`` (best: with its
    metric); ``checkpoint X: epoch and iterations unknown`` when nothing records them."""
    if record["total_iters"] is None:
        return f"checkpoint {record['prefix']}: epoch and iterations unknown ({record['note']})"
    where = {True: " (complete)", False: " (part)", None: ""}[record["epoch_complete"]]
    text = (f"checkpoint {record['prefix']}: epoch {record['trained_epoch']}{where}, total_iters "
            f"{record['total_iters']}, saved {record['saved_at']}")
    if "best" in record:
        text += f", best {record['best']['metric']} {record['best']['value']} ({BEST_FILE})"
    return text


def write_record(web_dir: str, record: Dict[str, Any]) -> None:
    """``<web_dir>/checkpoint.json``: the checkpoint the results come from."""
    os.makedirs(web_dir, exist_ok=True)
    try:
        atomic_write_text(os.path.join(web_dir, RECORD_FILE), json.dumps(record, indent=2, sort_keys=True) + "\n")
    except OSError as exc:
        raise write_error(exc, os.path.join(web_dir, RECORD_FILE)) from None


def translate_all(opt: Any, model: Any, dataset: Any, webpage: Any,
                  on_batch: Optional[Callable[[int], None]] = None, stop: Optional[GracefulStop] = None) -> int:
    """The inference loop: batches of ``--batch_size`` under inference mode (and ``--amp``), each image saved.

    ``on_batch(n)`` is called after each batch with the number of images it saved (the benchmark's clock).
    Returns the number of images translated. Two inputs with one file stem get different result names
    (util/result_names.py). With ``stop``, the loop ends after the batch during which a stop signal arrived.
    """
    names = ResultNames()
    governor = start_governor(on_cpu=str(opt.device).startswith("cpu"), deterministic=opt.deterministic)  # util/governor.py
    done = 0
    total = int(min(opt.num_test, len(dataset)))
    with torch.inference_mode(), Progress(total=total, desc="test", unit="img") as progress:
        for data in dataset:
            if done >= opt.num_test:
                break
            model.set_input(data)
            model.test()
            visuals = model.get_current_visuals()
            paths = model.get_image_paths()
            saved = 0
            for b in range(len(paths)):
                if done >= opt.num_test:
                    break
                if done % 5 == 0:  # the official line (printed above the bar on a terminal)
                    log.info("processing (%04d)-th image... %s", done, [paths[b]])
                save_images(webpage, split_visuals(visuals, b), [paths[b]], aspect_ratio=opt.aspect_ratio,
                            width=opt.display_winsize, use_wandb=opt.use_wandb, name=names.stem_for(paths[b]),
                            by_visual=model.results_by_visual)
                done += 1
                saved += 1
            progress.update(saved)
            governor.tick()  # fewer intra-op threads while other processes compete for the cores
            if on_batch is not None:
                on_batch(saved)
            if stop is not None and stop.requested:
                break
    return done


def report_checkpoint(opt: Any, save_dir: str) -> None:
    """Say which epoch and iteration the loaded checkpoint comes from; warn when the run went on past it."""
    line, warning = checkpoint_origin(save_dir, load_prefix(opt))
    log.info("%s", line)
    if warning:
        log.warning("%s", warning)


def save_options(opt: Any, table: str) -> None:
    """``<phase>_opt.txt`` beside the checkpoint; a read-only checkpoint folder is fine for testing."""
    if not table:
        return
    try:
        write_options_file(opt, table)
    except OSError as exc:
        log.warning("%s not written (%s): testing goes on", options_file(opt), exc.strerror or exc)


def run_test(opt: Any, on_batch: Optional[Callable[[int], None]] = None, options_table: str = "") -> str:
    """Translate up to ``--num_test`` images and save them with the results page; return the page's folder.

    ``options_table`` is saved as ``test_opt.txt`` once the data and the checkpoint have loaded.
    """
    dataset = create_dataset(opt)
    model = load_model(opt)  # the Python API's loader (options/pretrained.py): files checked, NaN/Inf refused
    record = checkpoint_record(opt, model)
    if "best" in record:
        log.info("%s", describe_record(record))
    else:
        report_checkpoint(opt, model.save_dir)
    save_options(opt, options_table)
    web_dir = results_dir(opt)
    log.info("creating web directory %s", web_dir)
    write_record(web_dir, record)
    webpage = html.HTML(web_dir, "Experiment = %s, Phase = %s, Epoch = %s; %s" % (opt.name, opt.phase, opt.epoch,
                                                                                 describe_record(record)))
    total = int(min(opt.num_test, len(dataset)))
    # SIGTERM/SIGHUP/Ctrl-C: finish the batch, write the page of the images done, exit with the signal's status
    with GracefulStop(action="writing the results page of the images done after the current batch, then stopping",
                      at_once="stopping at once: the images saved so far have no results page") as stop:
        try:
            done = translate_all(opt, model, dataset, webpage, on_batch, stop=stop)
        finally:
            dataset.close()
        webpage.save()
    if stop.requested:
        log.warning("stopped by %s after %d of %d images: the results page %s shows those %d", signal_name(stop.signum),
                    done, total, os.path.join(web_dir, "index.html"), done)
        raise SystemExit(128 + int(stop.signum))
    return web_dir


def main(argv: Optional[Sequence[str]] = None) -> str:
    """Parse the command line (or ``argv``) and run the test."""
    setup_logging()
    options = TestOptions()
    opt = options.parse_or_exit(argv, save=False)  # a bad flag: one error line naming it, exit status 2
    limit_torch_threads()  # no more intra-op threads than the cores this process may use (util/threads.py)
    options.show()
    if opt.seed >= 0:  # --seed: reproducible dropout at test time (util/seed.py)
        seed_everything(opt.seed, rank=opt.rank, deterministic=opt.deterministic)
    return run_test(opt, options_table=options.table)


if __name__ == "__main__":
    sys.exit(cli_main(main))
