"""The training-time evaluation flags (``--eval_freq``, ``--eval_metrics``, ``--eval_best``) resolved and checked.

Unaligned data (``--dataset_mode unaligned``) has no ground truth, so it is scored by distribution metrics in each
direction the model translates (default ``swd,classifier``, best by ``swd``); paired data compares outputs with
the ground truth (default ``psnr,ssim,l1``, best by ``l1``). What each metric needs and which way is better comes
from the one metric table, ``util.metrics.METRICS``. See docs/evaluation.md.
"""
from __future__ import annotations

import argparse
from typing import List, Sequence

from data import find_dataset_using_name
from util.metrics import METRICS, metric_for_key, needing, parse_metric_names
from util.metrics.inception import resolve_weights_path

UNPAIRED_DEFAULT_METRICS = "swd,classifier"
PAIRED_DEFAULT_METRICS = "psnr,ssim,l1"
UNPAIRED_DEFAULT_BEST = "swd"
PAIRED_DEFAULT_BEST = "l1"
# --eval_best: a metric's headline key, or the metric's name for it (classifier -> domain_score)
BEST_KEYS = tuple(dict.fromkeys([m.key for m in METRICS.values()] + list(METRICS)))


def has_test_split(dataset_mode: str) -> bool:
    """Whether the data of ``--dataset_mode`` can hold a test split for --eval_freq (its class's ``test_split``;
    singleimage, one training pair, cannot)."""
    return bool(getattr(find_dataset_using_name(dataset_mode), "test_split", True))


def is_unpaired(opt: argparse.Namespace) -> bool:
    """True for unaligned data (no ground truth): each translation direction is scored against the other domain."""
    return opt.dataset_mode == "unaligned"


def resolve_metrics(opt: argparse.Namespace) -> List[str]:
    """``--eval_metrics`` as a validated list; empty means the protocol's default (see the module docstring)."""
    text = opt.eval_metrics or (UNPAIRED_DEFAULT_METRICS if is_unpaired(opt) else PAIRED_DEFAULT_METRICS)
    try:
        names = parse_metric_names(text)
    except ValueError as exc:
        raise ValueError(f"--eval_metrics: {exc}") from None
    if is_unpaired(opt):
        bad = sorted(needing(names, "paired"))
        if bad:
            usable = ", ".join(n for n, m in METRICS.items() if not m.paired)
            raise ValueError(f"--eval_metrics {','.join(bad)} need ground-truth pairs, which unaligned data "
                             f"(--dataset_mode unaligned) does not have; use {usable}")
    else:
        bad = needing(names, "two_domains")
        if bad:
            usable = ", ".join(n for n, m in METRICS.items() if not m.two_domains)
            raise ValueError(f"--eval_metrics {','.join(bad)} needs two domains (<dataroot>/trainA and trainB); "
                             f"with --dataset_mode {opt.dataset_mode} use {usable}")
    return names


def resolve_best(opt: argparse.Namespace, metrics: Sequence[str]) -> str:
    """``--eval_best``, checked against the metrics. Default: swd (unaligned data) or l1 (paired data) when
    computed, else the headline key of the first metric of ``--eval_metrics`` (classifier -> domain_score)."""
    key = opt.eval_best
    if not key:
        key = UNPAIRED_DEFAULT_BEST if is_unpaired(opt) else PAIRED_DEFAULT_BEST
        if key not in metrics:
            key = METRICS[metrics[0]].key
    if key in METRICS:  # a metric name given for its key (classifier -> domain_score)
        key = METRICS[key].key
    source = metric_for_key(key).name  # a key outside BEST_KEYS was refused by the flag's type=Choice
    if source not in metrics:
        raise ValueError(f"--eval_best {key} is not computed: add {source} to --eval_metrics "
                         f"(now {','.join(metrics)})")
    return key


def check_eval_options(opt: argparse.Namespace) -> None:
    """Validate the evaluation flags at parse time (clear one-line errors naming the flag; the ranges of
    --eval_freq and --eval_num are in options/ranges.py)."""
    if opt.eval_freq > 0 and not has_test_split(opt.dataset_mode):
        raise ValueError(f"--eval_freq scores a held-out test split, which --dataset_mode {opt.dataset_mode} does not "
                         f"have (it trains on one image pair); drop --eval_freq and judge test.py's translation")
    metrics = resolve_metrics(opt)
    resolve_best(opt, metrics)
    if opt.eval_freq > 0 and needing(metrics, "inception"):
        resolve_weights_path(opt.inception_weights or None)
