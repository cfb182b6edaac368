"""The training run, used by train.py: the loop and what serves it.

* ``loop``: ``run(opt)``, the loop in phases (build, resume, epochs, report, save)
* ``checkpoints`` / ``resume``: the checkpoint set with its training state, and resuming from it
* ``nonfinite`` / ``signals``: the guards (``--nan_policy``; Ctrl-C and SIGTERM save and stop)
* ``evaluator``: ``--eval_freq`` with best-checkpoint tracking
"""
from training.loop import run

__all__ = ["run"]
