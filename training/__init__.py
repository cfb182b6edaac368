"""The training run, used by train.py: the loop and what serves it.

* ``loop``: ``run(opt)``, the loop in phases (build, resume, epochs, report, save)
* ``experiment``: one run per experiment folder (the lock), the start-up checks, a failed start writes nothing
* ``checkpoints`` / ``resume``: the checkpoint set with its training state, and resuming from it
* ``record``: which epoch and iteration a checkpoint comes from, and whether the run went on past it (test.py)
* ``nonfinite`` / ``signals``: the guards (``--nan_policy``; Ctrl-C and SIGTERM save and stop)
* ``evaluator``: ``--eval_freq`` with best-checkpoint tracking
"""
from training.loop import run

__all__ = ["run"]
