"""Train an image-to-image translation model (CycleGAN, pix2pix, ...).

Example:
    python train.py --dataroot ./datasets/maps --name maps_cyclegan --model cycle_gan
    python train.py --dataroot ./datasets/facades --name facades_pix2pix --model pix2pix --direction BtoA
See docs/training.md for the options and the differences from the official code.
"""
from __future__ import annotations

import time
from typing import Optional, Sequence

from data import create_dataset
from models import create_model
from options.train_options import TrainOptions
from util import training_state
from util.distributed import cleanup_distributed, init_distributed, setup_rank_logging
from util.logger import get_logger, setup_logging
from util.nonfinite import NonFiniteGuard
from util.seed import set_deterministic
from util.signals import GracefulStop, TrainingInterrupted, signal_name
from util.evaluation import Evaluator
from util.progress import Progress
from util.visualizer import Visualizer

log = get_logger("train")


def logs_due(opt, evaluator: Evaluator, total_iters: int) -> bool:
    """Whether this iteration prints losses, saves or evaluates (each writes console lines)."""
    freqs = [opt.print_freq, opt.save_latest_freq] + ([evaluator.freq] if evaluator.enabled else [])
    return any(total_iters % f == 0 for f in freqs)


def train(opt) -> None:
    """The official training loop: epochs of batches, periodic display/print/save, LR step at epoch end.

    Ours on top (docs/resume.md): each save also writes the training state; ``--continue_train`` restores it and
    continues mid-epoch; Ctrl-C/SIGTERM save ``latest`` after the current iteration and stop; ``--nan_policy``.
    """
    state = training_state.load_for_resume(opt)  # before the model: the LR schedule needs the first --epoch_count
    dataset = create_dataset(opt)
    dataset_size = len(dataset)
    log.info("The number of training images = %d", dataset_size)
    model = create_model(opt)
    if model.needs_first_batch:  # data-dependent init (CUT's F): before setup(), so schedulers, resume, DDP see it
        model.data_dependent_initialize(next(iter(dataset)))
    model.setup(opt)
    if getattr(opt, "deterministic", False):
        set_deterministic(True)  # after the model: BaseModel switches cuDNN autotuning on
    point = training_state.restore(model, dataset, opt, state)
    model.allocate_optimizer_state()  # after the restore, before any activations (less fragmented memory)
    checkpoints = training_state.Checkpointer(model, dataset, opt)
    guard = NonFiniteGuard(model, getattr(opt, "nan_policy", "stop"))
    visualizer = Visualizer(opt)
    evaluator = Evaluator(opt, model, visualizer)  # --eval_freq: fixed test subset, best checkpoint
    total_iters = point.total_iters
    n_total = opt.n_epochs + opt.n_epochs_decay
    if point.epoch > n_total:
        raise ValueError(f"nothing left to train: the run would start at epoch {point.epoch}, after the last one "
                         f"(--n_epochs + --n_epochs_decay = {n_total}); raise them to train longer")
    if getattr(opt, "rank", 0) == 0:
        training_state.remove_stale_temp_files(model.save_dir)
    training_state.restore_rng(point, opt)  # last: after everything that draws random numbers while being built
    saved_at = None  # (prefix, total_iters) of the last save, so a stop right after it does not save twice

    def save(prefix, epoch: int, epoch_iter: int, complete: bool = False) -> None:
        """Networks + training state under ``prefix`` (util/training_state.py)."""
        nonlocal saved_at
        checkpoints.save(prefix, epoch, epoch_iter, total_iters, epoch_complete=complete)
        saved_at = (str(prefix), total_iters)

    def stop_now(epoch: int, epoch_iter: int) -> TrainingInterrupted:
        """Save ``latest`` (unless just saved) and return the exception that ends the run."""
        if saved_at != ("latest", total_iters):
            save("latest", epoch, epoch_iter)
        return TrainingInterrupted(stop.signum, f"training stopped by {signal_name(stop.signum)} at epoch {epoch}, "
                                   f"total_iters {total_iters}: saved a resumable checkpoint (latest) in "
                                   f"{model.save_dir}; run the same command with --continue_train to go on")

    try:
        with GracefulStop() as stop:
            for epoch in range(point.epoch, n_total + 1):
                epoch_start_time = time.time()
                iter_data_time = time.time()
                if stop.agreed():
                    raise stop_now(epoch, 0)
                epoch_iter = training_state.start_epoch(dataset, epoch, point)  # set_epoch (+ resumed skip)
                t_data = 0.0
                visualizer.reset()
                progress = Progress(total=max(dataset_size - epoch_iter, 0), desc=f"epoch {epoch}/{n_total}",
                                    unit="img", disable=getattr(opt, "rank", 0) != 0)
                for data in dataset:
                    iter_start_time = time.time()
                    if total_iters % opt.print_freq == 0:
                        t_data = iter_start_time - iter_data_time
                    total_iters += opt.batch_size
                    epoch_iter += opt.batch_size
                    model.set_input(data)
                    model.optimize_parameters()
                    guard.check(epoch, total_iters)
                    progress.update(opt.batch_size)
                    if logs_due(opt, evaluator, total_iters):
                        progress.clear()  # log lines go on their own lines, the bar is redrawn after them
                    if total_iters % opt.display_freq == 0:
                        save_result = total_iters % opt.update_html_freq == 0
                        model.compute_visuals()
                        visualizer.display_current_results(model.get_current_visuals(), epoch, total_iters,
                                                           save_result)
                    if total_iters % opt.print_freq == 0:
                        losses = model.get_current_losses()
                        t_comp = (time.time() - iter_start_time) / opt.batch_size
                        visualizer.print_current_losses(epoch, epoch_iter, losses, t_comp, t_data)
                        visualizer.plot_current_losses(epoch, float(epoch_iter) / dataset_size, losses, total_iters)
                    evaluator.maybe_evaluate(epoch, total_iters)  # every --eval_freq images (docs/evaluation.md)
                    if total_iters % opt.save_latest_freq == 0:
                        log.info("saving the latest model (epoch %d, total_iters %d)", epoch, total_iters)
                        save("iter_%d" % total_iters if opt.save_by_iter else "latest", epoch, epoch_iter)
                    iter_data_time = time.time()
                    if stop.agreed():  # every process stops after the same iteration
                        raise stop_now(epoch, epoch_iter)
                progress.close()
                model.update_learning_rate()
                if epoch % opt.save_epoch_freq == 0:
                    log.info("saving the model at the end of epoch %d, iters %d", epoch, total_iters)
                    save("latest", epoch, epoch_iter, complete=True)
                    save(epoch, epoch, epoch_iter, complete=True)
                log.info("End of epoch %d / %d \t Time Taken: %d sec", epoch, n_total, time.time() - epoch_start_time)
    finally:
        guard.close()
        visualizer.close()
        dataset.close()  # stop the data-loader workers now, also when the run ends mid-epoch


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Parse the command line (or ``argv``) and train."""
    setup_logging()
    setup_rank_logging()  # under torchrun, ranks other than 0 print only warnings (docs/distributed.md)
    opt = TrainOptions().parse_or_exit(argv)  # a bad flag: one error line naming it, exit status 2
    init_distributed(opt)  # torchrun with several processes: process group, opt.local_rank, opt.device
    if getattr(opt, "seed", -1) >= 0:
        from util.seed import seed_everything

        seed_everything(opt.seed, rank=opt.rank, deterministic=getattr(opt, "deterministic", False))
    try:
        train(opt)
    except TrainingInterrupted as stopped:
        log.info("%s", stopped)
        raise SystemExit(stopped.exit_code) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None  # second Ctrl-C: the handler has said what happened
    finally:
        cleanup_distributed()


if __name__ == "__main__":
    main()
