"""Files that change after the pre-flight scan: a sample that can no longer be read never kills a worker.

The pre-flight scan (data/validation.py) checks every file before the first batch, but a file can still be
deleted, replaced or damaged while a run goes on. ``ReadableSamples`` wraps the dataset given to the DataLoader:
a sample whose image cannot be read or used (``ImageReadError``, ``ImageSizeError``, both naming the file)
becomes an ``Unreadable`` marker, and ``collate_readable`` batches the other samples with the markers beside
them (``PartialBatch``). The loader (data/__init__.py) then applies ``--bad_data`` in the main process:
``skip`` leaves the sample out with a warning, ``error`` raises ``DataChangedError`` naming the file (training
saves a resumable ``latest`` first: training/loop.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional, Sequence

from torch.utils.data import Dataset, default_collate

from data.sampler import sample_randomness
from util.errors import UserError
from util.image_io import ImageReadError, ImageSizeError


class DataChangedError(UserError, RuntimeError):
    """A file that passed the pre-flight scan cannot be read any more (the message names it)."""


@dataclass(frozen=True)
class Unreadable:
    """Stands in for a sample whose file could not be read or used; ``message`` names the file."""

    index: int
    message: str


@dataclass(frozen=True)
class PartialBatch:
    """A batch in which some samples were unreadable: the rest collated (None when no sample was readable)."""

    batch: Optional[Any]
    problems: List[Unreadable]


class ReadableSamples(Dataset):
    """``dataset[index]``, or an ``Unreadable`` marker when the sample's image cannot be read or used.

    An index that carries a seed (``data.sampler.SampleKey``) is loaded under ``sample_randomness(index.seed)``:
    its random crop, flip, B image ... depend on (data seed, epoch, index) only, not on the loader's workers."""

    def __init__(self, dataset: Any) -> None:
        """Wrap ``dataset``."""
        self.dataset = dataset

    def __len__(self) -> int:
        """The wrapped dataset's length."""
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        """The sample, or the marker naming the file that failed."""
        try:
            seed = getattr(index, "seed", None)
            if seed is None:
                return self.dataset[index]
            with sample_randomness(seed):
                return self.dataset[index]
        except (ImageReadError, ImageSizeError) as err:
            return Unreadable(int(index), str(err))


def collate_readable(items: Sequence[Any]) -> Any:
    """``default_collate`` of the readable samples; a ``PartialBatch`` when some were not."""
    problems = [item for item in items if isinstance(item, Unreadable)]
    if not problems:
        return default_collate(list(items))
    readable = [item for item in items if not isinstance(item, Unreadable)]
    return PartialBatch(default_collate(readable) if readable else None, problems)
