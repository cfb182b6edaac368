"""Experiment trackers (W&B, TensorBoard), optional. Their packages are imported only when a tracker is created.

(The console and file logging of the whole project is util/logger.py.)

Both log at step = total_iters. After an exact resume (``--continue_train`` from a training state) both continue
one curve: TensorBoard hides the events an interrupted session wrote after the checkpoint (``purge_step``); W&B
goes on in the same run (its id is kept in ``checkpoints/<name>/wandb_run_id.txt``) and, since a W&B run's
steps only grow, does not send again the steps that run already holds.
"""
from __future__ import annotations

import math
import os
from typing import Any, Dict, Mapping, Optional

import numpy as np

from util.logger import get_logger
from util.util import atomic_write_text, mkdirs

log = get_logger(__name__)

DEFAULT_WANDB_PROJECT = "CycleGAN-and-pix2pix"
WANDB_RUN_ID_FILE = "wandb_run_id.txt"


def experiment_dir(opt: Any) -> str:
    """Return ``checkpoints_dir/name`` for an options object."""
    return os.path.join(opt.checkpoints_dir, opt.name)


def _plain_config(opt: Any) -> Dict[str, Any]:
    """Turn the options into JSON-friendly values (non-finite floats and objects become strings)."""
    config: Dict[str, Any] = {}
    for key, value in vars(opt).items():
        if isinstance(value, float) and not math.isfinite(value):
            config[key] = str(value)
        elif value is None or isinstance(value, (bool, int, float, str)):
            config[key] = value
        elif isinstance(value, (list, tuple)) and all(isinstance(v, (bool, int, float, str)) for v in value):
            config[key] = list(value)
        else:
            config[key] = str(value)
    return config


class WandbLogger:
    """Weights & Biases logging as the official code does it (project, run name, config = the options)."""

    def __init__(self, opt: Any, skip_through: Optional[int] = None) -> None:
        """Start (or reuse) a W&B run writing under ``checkpoints/<name>/``; WANDB_MODE=offline is respected.

        ``skip_through`` (an exact resume): continue the run whose id this experiment saved, and leave out the
        steps up to this one, which that run already holds. None: a new run.
        """
        try:
            import wandb  # noqa: PLC0415 - imported only when --use_wandb is given
        except ImportError as error:
            raise RuntimeError("--use_wandb needs the 'wandb' package: pip install wandb (or drop --use_wandb)") from error
        self._wandb = wandb
        run_dir = experiment_dir(opt)
        mkdirs(run_dir)
        id_file = os.path.join(run_dir, WANDB_RUN_ID_FILE)
        run_id = _read_run_id(id_file) if skip_through is not None else None
        self.skip_through = int(skip_through) if run_id else 0
        self._owns_run = wandb.run is None
        if self._owns_run:
            resume = {"id": run_id, "resume": "allow"} if run_id else {}
            try:
                self.run = wandb.init(
                    project=opt.wandb_project_name or DEFAULT_WANDB_PROJECT,
                    name=opt.name,
                    config=_plain_config(opt),
                    dir=run_dir,
                    **resume,
                )
            except Exception as error:  # noqa: BLE001 - add the two usual fixes to wandb's message
                raise RuntimeError(
                    f"--use_wandb: wandb.init failed ({error}); run `wandb login`, or set WANDB_MODE=offline "
                    "to log to disk only"
                ) from error
            atomic_write_text(id_file, str(self.run.id) + "\n")
        else:
            self.run = wandb.run
        try:
            self.run._label(repo="CycleGAN-and-pix2pix")  # official telemetry label; private API, best effort
        except Exception:  # noqa: BLE001 - absent in some wandb versions
            pass

    def log_scalars(self, values: Mapping[str, float], step: int) -> None:
        """Log scalar values at ``step`` (total_iters)."""
        if step > self.skip_through:
            self.run.log({k: float(v) for k, v in values.items()}, step=int(step))

    def log_images(self, images: Mapping[str, np.ndarray], step: int) -> None:
        """Log HWC uint8 images as ``results/<label>`` with caption ``<label> - Step <step>``."""
        if step <= self.skip_through:
            return
        payload = {f"results/{label}": self._wandb.Image(image, caption=f"{label} - Step {step}")
                   for label, image in images.items()}
        self.run.log(payload, step=int(step))

    def close(self) -> None:
        """Finish the run if this logger started it."""
        if self._owns_run and self.run is not None:
            self.run.finish()
        self.run = None


def _read_run_id(path: str) -> Optional[str]:
    """The W&B run id saved by an earlier session of this experiment, or None."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip() or None
    except OSError:
        return None


class TensorBoardLogger:
    """TensorBoard event files in ``checkpoints/<name>/tensorboard/``."""

    def __init__(self, opt: Any, purge_step: Optional[int] = None) -> None:
        """Open a SummaryWriter (needs the ``tensorboard`` package).

        ``purge_step`` (an exact resume): TensorBoard hides the earlier events at this step and later.
        """
        try:
            from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415 - only with --use_tensorboard
        except ImportError as error:
            raise RuntimeError(
                "--use_tensorboard needs the 'tensorboard' package: pip install tensorboard (or drop --use_tensorboard)"
            ) from error
        self.log_dir = os.path.join(experiment_dir(opt), "tensorboard")
        mkdirs(self.log_dir)
        self.writer = SummaryWriter(log_dir=self.log_dir, purge_step=purge_step)

    def log_scalars(self, values: Mapping[str, float], step: int) -> None:
        """Add one scalar per key at ``step`` and flush."""
        for key, value in values.items():
            self.writer.add_scalar(key, float(value), int(step))
        self.writer.flush()

    def log_images(self, images: Mapping[str, np.ndarray], step: int) -> None:
        """Add HWC uint8 images as ``results/<label>`` at ``step`` and flush."""
        for label, image in images.items():
            self.writer.add_image(f"results/{label}", np.asarray(image), int(step), dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        if self.writer is not None:
            self.writer.close()
        self.writer = None
