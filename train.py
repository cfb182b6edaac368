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
from util.logger import get_logger, setup_logging
from util.visualizer import Visualizer

log = get_logger("train")


def train(opt) -> None:
    """The official training loop: epochs of batches, periodic display/print/save, LR step at epoch end."""
    dataset = create_dataset(opt)
    dataset_size = len(dataset)
    log.info("The number of training images = %d", dataset_size)
    model = create_model(opt)
    model.setup(opt)
    visualizer = Visualizer(opt)
    total_iters = 0
    n_total = opt.n_epochs + opt.n_epochs_decay
    try:
        for epoch in range(opt.epoch_count, n_total + 1):
            epoch_start_time = time.time()
            iter_data_time = time.time()
            epoch_iter = 0
            t_data = 0.0
            visualizer.reset()
            dataset.set_epoch(epoch)
            for data in dataset:
                iter_start_time = time.time()
                if total_iters % opt.print_freq == 0:
                    t_data = iter_start_time - iter_data_time
                total_iters += opt.batch_size
                epoch_iter += opt.batch_size
                model.set_input(data)
                model.optimize_parameters()
                if total_iters % opt.display_freq == 0:
                    save_result = total_iters % opt.update_html_freq == 0
                    model.compute_visuals()
                    visualizer.display_current_results(model.get_current_visuals(), epoch, total_iters, save_result)
                if total_iters % opt.print_freq == 0:
                    losses = model.get_current_losses()
                    t_comp = (time.time() - iter_start_time) / opt.batch_size
                    visualizer.print_current_losses(epoch, epoch_iter, losses, t_comp, t_data)
                    visualizer.plot_current_losses(epoch, float(epoch_iter) / dataset_size, losses, total_iters)
                if total_iters % opt.save_latest_freq == 0:
                    log.info("saving the latest model (epoch %d, total_iters %d)", epoch, total_iters)
                    model.save_networks("iter_%d" % total_iters if opt.save_by_iter else "latest")
                iter_data_time = time.time()
            model.update_learning_rate()
            if epoch % opt.save_epoch_freq == 0:
                log.info("saving the model at the end of epoch %d, iters %d", epoch, total_iters)
                model.save_networks("latest")
                model.save_networks(epoch)
            log.info("End of epoch %d / %d \t Time Taken: %d sec", epoch, n_total, time.time() - epoch_start_time)
    finally:
        visualizer.close()


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Parse the command line (or ``argv``) and train."""
    setup_logging()
    opt = TrainOptions().parse(argv)
    train(opt)


if __name__ == "__main__":
    main()
