"""Generator EMA (``--ema DECAY``): an exponential moving average of each generator's weights, kept beside it.

After every applied generator step, ``ema = decay * ema + (1 - decay) * weights`` for each parameter; buffers
(batch-norm statistics) are copied. The average is a network of the generator's own class, saved as
``<prefix>_net_<G>_ema.pth`` with the generator's keys, so ``--use_ema`` loads it in place of the generator at test
time, in export and in ``--eval_freq``, and a resume restores it exactly. (StyleGAN2 and mmagic keep the same
average; the update is written out here rather than taken from ``torch.optim.swa_utils.AveragedModel`` because
that wrapper's files carry its own keys and counter instead of the generator's state_dict.)
"""
from __future__ import annotations

import copy
from typing import List, Sequence

import torch
import torch.nn as nn

EMA_SUFFIX = "_ema"


def generator_names(model_names: Sequence[str]) -> List[str]:
    """The generators among a model's networks (``G``, ``G_A``, ...), not their averages."""
    return [n for n in model_names if n.startswith("G") and not n.endswith(EMA_SUFFIX)]


def make_average(net: nn.Module) -> nn.Module:
    """A frozen copy of ``net`` (the bare module) that starts the average."""
    return copy.deepcopy(net).requires_grad_(False)


@torch.no_grad()
def update_average(average: nn.Module, net: nn.Module, decay: float) -> None:
    """``average = decay * average + (1 - decay) * net`` per parameter; buffers copied."""
    for a, p in zip(average.parameters(), net.parameters()):
        a.lerp_(p.detach().to(a.dtype), 1.0 - decay)
    for a, b in zip(average.buffers(), net.buffers()):
        a.copy_(b)
