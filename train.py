"""Train an image-to-image translation model (CycleGAN, pix2pix, ...).

Example:
    python train.py --dataroot ./datasets/maps --name maps_cyclegan --model cycle_gan
    python train.py --dataroot ./datasets/facades --name facades_pix2pix --model pix2pix --direction BtoA
See docs/training.md for the options and the differences from the official code; the loop is training/loop.py.
A user's mistake (bad data, missing checkpoint, experiment in use, ...) ends with one ``train.py: error:`` line
and exit status 2; a run whose losses became NaN/Inf (``--nan_policy``) with one such line and exit status 1
(``--debug`` shows the traceback of either).
"""
from __future__ import annotations

import os
import sys
from typing import Optional, Sequence

from options.train_options import TrainOptions
from training import run
from training.nonfinite import NonFiniteLossError
from training.signals import TrainingInterrupted
from util.distributed import cleanup_distributed, init_distributed, setup_rank_logging
from util.errors import cli_main, debug_requested, one_line
from util.logger import get_logger, setup_logging
from util.seed import seed_everything
from util.threads import limit_torch_threads

log = get_logger("train")


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Parse the command line (or ``argv``) and train."""
    setup_logging()
    setup_rank_logging()  # under torchrun, ranks other than 0 print only warnings (docs/distributed.md)
    options = TrainOptions()
    opt = options.parse_or_exit(argv, save=False)  # a bad flag: one error line naming it, exit status 2
    limit_torch_threads()  # no more intra-op threads than the cores this process may use (util/threads.py)
    options.show()  # train_opt.txt is written once the start-up checks have passed (training/experiment.py)
    init_distributed(opt)  # torchrun with several processes: process group, opt.local_rank, opt.device
    if opt.seed >= 0:
        seed_everything(opt.seed, rank=opt.rank, deterministic=opt.deterministic)
    finished = False  # leave the process group together only when every process got to the same point
    try:
        run(opt, options.table)
        finished = True
    except TrainingInterrupted as stopped:
        finished = True  # every process agreed to stop after the same iteration
        log.info("%s", stopped)
        raise SystemExit(stopped.exit_code) from None
    except NonFiniteLossError as diverged:
        finished = True  # every process saw the same non-finite values and stops after the same iteration
        if debug_requested(argv):
            raise
        print(f"{os.path.basename(sys.argv[0]) or 'train.py'}: error: {one_line(str(diverged))}", file=sys.stderr)
        raise SystemExit(1) from None  # the run failed (2: a mistake found before training)
    except KeyboardInterrupt:
        raise SystemExit(130) from None  # second Ctrl-C: the handler has said what happened
    finally:
        cleanup_distributed(wait_for_peers=finished)


if __name__ == "__main__":
    sys.exit(cli_main(main))
