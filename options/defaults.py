"""Complete option sets without a command line: what train.py or test.py would parse, for code and tests that
build options themselves (so nothing downstream needs ``getattr(opt, name, default)`` fallbacks)."""
from __future__ import annotations

import argparse
from typing import Any

import torch

import models

from .test_options import TestOptions
from .train_options import TrainOptions


def default_options(model: str = "cycle_gan", is_train: bool = True, **values: Any) -> argparse.Namespace:
    """The options of ``--model model`` (and ``dataset_mode`` when given: its flags too) with every other flag at
    its default, plus the attributes ``parse`` adds (CPU, one process); then ``values`` set over them. Not
    validated and nothing written: a starting point, not a checked command line."""
    argv = ["--dataroot", str(values.get("dataroot", ".")), "--model", model]
    if "dataset_mode" in values:
        argv += ["--dataset_mode", str(values["dataset_mode"])]
    opt = (TrainOptions() if is_train else TestOptions()).gather_options(argv)
    opt.isTrain = is_train
    opt.explicit_flags, opt.rank, opt.world_size = [], 0, 1
    opt.gpu_ids, opt.device = [], torch.device("cpu")
    opt.min_input_side, opt.min_input_side_by = 1, "the networks"
    for key, value in values.items():
        setattr(opt, key, value)
    model = models.find_model_using_name(opt.model)
    opt.translates_both_ways, opt.stacks_domains = model.translates_both_ways(opt), model.stacks_domains(opt)
    return opt
