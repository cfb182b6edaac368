"""Dataset discovery and the data loader wrapper.

``--dataset_mode dummy`` imports ``data/dummy_dataset.py`` and uses its class ``DummyDataset`` (a subclass of
``BaseDataset``); see ``data/template_dataset.py`` for a documented example. ``create_dataset(opt)`` returns the
loader wrapper that train.py and test.py iterate over.
"""
from __future__ import annotations

import atexit
import importlib
import weakref
from argparse import Namespace
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.distributed as dist
import torch.utils.data

from data.base_dataset import BaseDataset
from data.guard import DataChangedError, PartialBatch, ReadableSamples, collate_readable
from data.sampler import ResumableSampler, make_sampler, quiet_worker
from data.validation import (check_layout, check_outputs_apart, check_single_root, output_folders, preflight,
                             read_folders)
from util.logger import get_logger

log = get_logger(__name__)

_DATA_DIR = Path(__file__).resolve().parent
_SUFFIX = "_dataset.py"


def list_dataset_modes() -> list[str]:
    """Return the sorted names of the dataset modes found as ``data/<name>_dataset.py``."""
    names = [p.name[: -len(_SUFFIX)] for p in _DATA_DIR.glob("*" + _SUFFIX)]
    return sorted(n for n in names if n and n != "base")


def find_dataset_using_name(dataset_name: str) -> type[BaseDataset]:
    """Import ``data.<name>_dataset`` and return its BaseDataset subclass named ``<Name>Dataset``."""
    valid = ", ".join(list_dataset_modes())
    module_name = f"data.{dataset_name}_dataset"
    if dataset_name == "base" or dataset_name not in list_dataset_modes():
        raise ValueError(f"--dataset_mode {dataset_name!r} is unknown; valid dataset modes: {valid}")
    module = importlib.import_module(module_name)
    target = dataset_name.replace("_", "") + "dataset"
    for name, cls in vars(module).items():
        if (name.lower() == target.lower() and isinstance(cls, type) and issubclass(cls, BaseDataset)
                and cls is not BaseDataset):
            return cls
    raise ValueError(
        f"In {module_name}.py, there should be a subclass of BaseDataset with class name that matches "
        f"{target} in lowercase; valid dataset modes: {valid}"
    )


def get_option_setter(dataset_name: str) -> Callable:
    """Return the static ``modify_commandline_options`` of the dataset class."""
    return find_dataset_using_name(dataset_name).modify_commandline_options


def create_dataset(opt: Namespace) -> "CustomDatasetDataLoader":
    """Create the dataset named by ``opt.dataset_mode`` wrapped in a ``CustomDatasetDataLoader``."""
    return CustomDatasetDataLoader(opt).load_data()


def _distributed_world_size() -> int:
    """World size of the default process group, or 1 when torch.distributed is not initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def _close_at_exit(ref: "weakref.ReferenceType[CustomDatasetDataLoader]") -> None:
    """atexit hook: close the loader if it still exists."""
    loader = ref()
    if loader is not None:
        loader.close()


class CustomDatasetDataLoader:
    """Dataset + DataLoader wrapper with the official ``max_dataset_size`` cap and a DDP-aware sampler."""

    def __init__(self, opt: Namespace) -> None:
        """Instantiate the dataset class and build the DataLoader."""
        self.opt = opt
        dataset_class = find_dataset_using_name(opt.dataset_mode)
        check_layout(opt)  # missing folders: say what the mode expects and what to do (data/validation.py)
        check_single_root(opt)  # --dataset_mode single on a trainA/trainB/testA/testB root
        self.dataset = dataset_class(opt)
        check_outputs_apart(opt.dataroot, output_folders(opt), read_folders(self.dataset, opt))
        log.info(f"dataset [{type(self.dataset).__name__}] was created")
        preflight(self.dataset, opt)  # unreadable/too-small images: error or skip (--bad_data)
        self.dataset.after_preflight()  # checks of the files that remain (singleimage: one image per folder)
        # Seeded per-epoch order (DistributedSampler rules, one process included) that a resumed run can
        # start part-way; it never draws from the global RNGs (data/sampler.py).
        world = _distributed_world_size()
        self.sampler: ResumableSampler = make_sampler(self.dataset, opt, rank=dist.get_rank() if world > 1 else 0,
                                                      world_size=world)
        num_workers = int(opt.num_threads)
        self.dataloader = torch.utils.data.DataLoader(
            ReadableSamples(self.dataset),  # a file that changed after the pre-flight: see readable_part
            batch_size=opt.batch_size,
            collate_fn=collate_readable,
            shuffle=False,
            sampler=self.sampler,
            num_workers=num_workers,
            persistent_workers=num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            generator=self.sampler.loader_generator,
            worker_init_fn=quiet_worker if num_workers > 0 else None,
        )
        if num_workers > 0:
            # Workers ignore SIGTERM (data/sampler.quiet_worker), so multiprocessing's exit handler, which terminates
            # and then joins them, would wait forever after a run that ends mid-epoch (an error, a NaN stop, a
            # second Ctrl-C). Registered after multiprocessing's own handler, this one runs first and stops them.
            atexit.register(_close_at_exit, weakref.ref(self))

    def close(self) -> None:
        """Stop the worker processes now (idempotent); iterating again starts new ones."""
        iterator = getattr(self.dataloader, "_iterator", None)
        if iterator is not None:
            shutdown = getattr(iterator, "_shutdown_workers", None)
            if shutdown is not None:
                shutdown()
            self.dataloader._iterator = None

    def load_data(self) -> "CustomDatasetDataLoader":
        """Return the wrapper itself (official API)."""
        return self

    def set_epoch(self, epoch: int) -> None:
        """Forward the epoch to the sampler (each epoch has its own seeded order) and to the dataset, if it
        cares; when the dataset changes, running workers are stopped so the next epoch starts them with it."""
        self.sampler.set_epoch(epoch)
        dataset_set_epoch = getattr(self.dataset, "set_epoch", None)
        if callable(dataset_set_epoch) and dataset_set_epoch(epoch):
            self.close()

    def __len__(self) -> int:
        """Number of samples: min(len(dataset), --max_dataset_size) (the full size under DDP too)."""
        return int(min(len(self.dataset), self.opt.max_dataset_size))

    def __iter__(self) -> Iterator[Any]:
        """Yield batches, stopping once ``i * batch_size >= max_dataset_size``."""
        skipped = self.sampler.start // self.opt.batch_size  # batches a resumed epoch already trained on
        for i, data in enumerate(self.dataloader, start=skipped):
            if i * self.opt.batch_size >= self.opt.max_dataset_size:
                break
            if isinstance(data, PartialBatch):
                data = self.readable_part(data)
                if data is None:
                    continue
            yield data

    def readable_part(self, partial: PartialBatch) -> Any:
        """A batch with unreadable samples (files changed after the pre-flight scan), as ``--bad_data`` says:
        ``skip``: the readable samples (None if none), with a warning per file; ``error``: ``DataChangedError``."""
        if self.opt.bad_data != "skip":
            raise DataChangedError(f"{partial.problems[0].message} (it passed the pre-flight scan, so it was deleted, "
                                   f"replaced or damaged since); restore or remove it, or pass --bad_data skip")
        for problem in partial.problems:
            log.warning("--bad_data skip: left out sample %d: %s", problem.index, problem.message)
        return partial.batch
