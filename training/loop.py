"""The training run: ``run(opt)`` builds everything, resumes, trains the epochs, reports and saves.

The official loop (epochs of batches; display, print and save at their frequencies; the learning rate steps at
each epoch's end), in labelled phases, with what we add on top (docs/resume.md): one run per experiment folder
(a lock; nothing is written before the start-up checks pass); every save also writes the training state;
``--continue_train`` restores it and continues mid-epoch; the last epoch always saves; Ctrl-C/SIGTERM save
``latest`` after the current iteration and stop; ``--nan_policy``; ``--eval_freq``.
"""
from __future__ import annotations

import argparse
import time
from typing import Any, Callable, Iterator, Optional, Tuple

from data import create_dataset
from data.guard import DataChangedError
from models import create_model
from util.governor import start_governor
from util.logger import get_logger
from util.progress import Progress
from util.seed import set_deterministic
from util.visualizer import Visualizer

from options.paths import parse_epochs
from training.checkpoints import Checkpointer, load_prefix
from training.evaluator import Evaluator
from training.experiment import ExperimentFolder
from training.nonfinite import NonFiniteGuard
from training.resume import ResumePoint, check_something_left, load_for_resume, restore, restore_rng, start_epoch
from training.retention import Retention
from training.signals import GracefulStop, TrainingInterrupted, signal_name

log = get_logger("train")


class Run:
    """One training run: the objects built for it and the counters the loop advances."""

    def __init__(self, opt: argparse.Namespace, folder: ExperimentFolder) -> None:
        """Phase 1, build: data, model (set up, loaded when resuming), guards; then ``folder.begin()`` and the
        reports, the first writes into the experiment folder."""
        self.opt = opt
        state = load_for_resume(opt)  # before the model: the LR schedule needs the first --epoch_count
        self.n_total = opt.n_epochs + opt.n_epochs_decay
        check_something_left(opt, state)
        self.dataset = create_dataset(opt)
        self.dataset_size = len(self.dataset)
        log.info("The number of training images = %d", self.dataset_size)
        self.model = create_model(opt)
        if self.model.needs_first_batch:  # data-dependent init (CUT's F): before setup(), so that the schedulers,
            self.model.data_dependent_initialize(next(iter(self.dataset)))  # the resume and DDP see what it builds
        self.model.setup(opt)
        if opt.deterministic:
            set_deterministic(True)  # after the model: BaseModel switches cuDNN autotuning on
        # Phase 2, resume: optimizers, schedules, pools and counters of the training state (if any)
        self.point: ResumePoint = restore(self.model, self.dataset, opt, state)
        self.model.allocate_optimizer_state()  # after the restore, before any activations (less fragmented memory)
        self.checkpoints = Checkpointer(self.model, self.dataset, opt)
        self.retention = Retention(self.model.save_dir, opt.keep_last, parse_epochs(opt.keep_epochs),
                                   load_prefix(opt) if opt.continue_train else None)
        self.guard = NonFiniteGuard(self.model, opt.nan_policy)
        # intra-op threads: all while the cores are ours, fewer while other processes compete (util/governor.py)
        self.governor = start_governor(on_cpu=str(opt.device).startswith("cpu"), deterministic=opt.deterministic)
        self.evaluator = Evaluator(opt, self.model)  # --eval_freq: fixed test subset, best checkpoint
        folder.begin()  # --overwrite clean-up, train_opt.txt, leftovers of killed saves
        # appends to loss_log.txt only once the start has succeeded; plots and trackers continue one curve
        self.visualizer = Visualizer(opt, resume=self.point)
        self.evaluator.visualizer = self.visualizer
        self.total_iters = self.point.total_iters
        self.saved_at: Optional[Tuple[str, int]] = None  # (prefix, total_iters) of the last save
        self.printed_at = self.displayed_at = -1  # total_iters of the last loss line / display
        restore_rng(self.point, opt)  # last: after everything that draws random numbers while being built

    # ------------------------------------------------------------------------------------------------ phase 5: save
    def save(self, prefix: Any, epoch: int, epoch_iter: int, complete: bool = False) -> None:
        """Networks + training state under ``prefix`` (training/checkpoints.py)."""
        self.checkpoints.save(prefix, epoch, epoch_iter, self.total_iters, epoch_complete=complete)
        self.saved_at = (str(prefix), self.total_iters)
        if self.opt.rank == 0 and str(prefix) != "latest":  # --keep_last: older numbered sets go
            self.retention.after_save()

    def stop_now(self, signum: int, epoch: int, epoch_iter: int) -> TrainingInterrupted:
        """Save ``latest`` (unless just saved) and return the exception that ends the run."""
        if self.saved_at != ("latest", self.total_iters):
            self.save("latest", epoch, epoch_iter)
        return TrainingInterrupted(signum, f"training stopped by {signal_name(signum)} at epoch {epoch}, "
                                   f"total_iters {self.total_iters}: saved a resumable checkpoint (latest) in "
                                   f"{self.model.save_dir}; run the same command with --continue_train to go on")

    def batches(self, epoch: int, done: Callable[[], int]) -> Iterator[Any]:
        """The epoch's batches; a file that changed after the pre-flight scan (``--bad_data error``) saves a
        resumable ``latest`` at the last trained batch (``done()`` images into the epoch), then stops the run."""
        try:
            yield from self.dataset
        except DataChangedError as err:
            self.save("latest", epoch, done())
            raise DataChangedError(f"{err}; saved a resumable checkpoint (latest, epoch {epoch}, total_iters "
                                   f"{self.total_iters}) in {self.model.save_dir}: run the same command with "
                                   f"--continue_train to go on") from None

    # ------------------------------------------------------------------------------------------------ phase 4: report
    def images_seen(self, epoch_iter: int) -> int:
        """Images of the epoch done by all processes (``epoch_iter`` counts one process's), as the progress bar."""
        return min(epoch_iter * self.opt.world_size, self.dataset_size)

    def report(self, epoch: int, epoch_iter: int, iter_start: float, t_data: float,
               epoch_end: bool = False) -> None:
        """Visuals every --display_freq images, losses every --print_freq, evaluation every --eval_freq; at the
        epoch's end (``epoch_end``) the losses and the visuals in any case, unless already shown at this
        iteration, so that a run shorter than the frequencies still leaves a loss line, images and the page."""
        opt, model, visualizer = self.opt, self.model, self.visualizer
        seen = self.images_seen(epoch_iter)  # loss lines and the plot count the whole dataset (docs/distributed.md)
        if (self.displayed_at != self.total_iters if epoch_end else self.total_iters % opt.display_freq == 0):
            save_result = epoch_end or self.total_iters % opt.update_html_freq == 0
            model.compute_visuals()
            visualizer.display_current_results(model.get_current_visuals(), epoch, self.total_iters, save_result)
            self.displayed_at = self.total_iters
        if (self.printed_at != self.total_iters if epoch_end else self.total_iters % opt.print_freq == 0):
            losses = model.get_current_losses()
            t_comp = (time.time() - iter_start) / opt.batch_size
            visualizer.print_current_losses(epoch, seen, losses, t_comp, t_data)
            visualizer.plot_current_losses(epoch, float(seen) / self.dataset_size, losses, self.total_iters)
            self.printed_at = self.total_iters
        if not epoch_end:  # every --eval_freq images (docs/evaluation.md), plotted at the losses' x
            self.evaluator.maybe_evaluate(epoch, self.total_iters, float(seen) / self.dataset_size)

    # ------------------------------------------------------------------------------------------------ phase 3: epochs
    def train_epoch(self, epoch: int, stop: GracefulStop) -> None:
        """One epoch of batches (the rest of it when resuming mid-epoch), then the LR step and the epoch save."""
        opt, model = self.opt, self.model
        epoch_start_time = time.time()
        iter_data_time = time.time()
        if stop.agreed():
            raise self.stop_now(stop.signum, epoch, 0)
        epoch_iter = start_epoch(self.dataset, epoch, self.point)  # set_epoch (+ resumed skip)
        t_data, iter_start, trained = 0.0, time.time(), False
        self.visualizer.reset()
        # the bar counts the whole dataset (all processes' images), from the resumed position; ETA of the epoch and
        # of the run (the epochs after this one at this epoch's rate)
        world = opt.world_size
        progress = Progress(total=self.dataset_size, initial=epoch_iter * world, later=(self.n_total - epoch) *
                            self.dataset_size, desc=f"epoch {epoch}/{self.n_total}", unit="img",
                            disable=opt.rank != 0)
        # closes the bar however the epoch ends; a file changed since the pre-flight scan saves and stops (batches)
        for data in progress.iterate(self.batches(epoch, lambda: epoch_iter)):
            iter_start = time.time()
            if self.total_iters % opt.print_freq == 0:
                t_data = iter_start - iter_data_time
            self.total_iters += opt.batch_size
            epoch_iter += opt.batch_size
            model.set_input(data)
            model.train_step()
            self.guard.check(epoch, self.total_iters)
            self.governor.tick()
            progress.update(opt.batch_size * world)
            self.report(epoch, epoch_iter, iter_start, t_data)
            trained = True
            if self.total_iters % opt.save_latest_freq == 0:
                log.info("saving the latest model (epoch %d, total_iters %d)", epoch, self.total_iters)
                self.save("iter_%d" % self.total_iters if opt.save_by_iter else "latest", epoch, epoch_iter)
            iter_data_time = time.time()
            if stop.agreed():  # every process stops after the same iteration
                raise self.stop_now(stop.signum, epoch, epoch_iter)
        if trained:  # a loss line, the images and the page at every epoch's end, whatever the frequencies
            self.report(epoch, epoch_iter, iter_start, t_data, epoch_end=True)
        model.update_learning_rate()
        if epoch % opt.save_epoch_freq == 0 or epoch == self.n_total:  # the last epoch always leaves a checkpoint
            log.info("saving the model at the end of epoch %d, iters %d", epoch, self.total_iters)
            self.save("latest", epoch, epoch_iter, complete=True)
            self.save(epoch, epoch, epoch_iter, complete=True)
        log.info("End of epoch %d / %d \t Time Taken: %d sec", epoch, self.n_total, time.time() - epoch_start_time)

    def close(self) -> None:
        """Remove the guard's hooks, close the reports, stop the data-loader workers."""
        self.guard.close()
        self.visualizer.close()
        self.dataset.close()  # also when the run ends mid-epoch


def run(opt: argparse.Namespace, options_table: str = "") -> None:
    """Train as the options say: lock the folder, build, resume, then every remaining epoch (report and save).

    ``options_table`` is saved as ``train_opt.txt`` once the start-up checks have passed.
    """
    with ExperimentFolder(opt, options_table) as folder:
        state = Run(opt, folder)
        try:
            with GracefulStop() as stop:
                for epoch in range(state.point.epoch, state.n_total + 1):
                    state.train_epoch(epoch, stop)
        finally:
            state.close()
