"""The metric table (``METRICS``) and ``compute_metrics``; re-exported lazily by :mod:`util.metrics`.

Importing this module imports every metric implementation (Inception, the domain classifier, tqdm...);
``util.metrics`` itself stays light so that ``util.metrics.images`` can be imported alone (the models do).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping

import torch

from util.errors import InvalidInputError
from util.metrics.classifier import classifier_metric
from util.metrics.fid import fid_metric, kid_metric
from util.metrics.inception import get_extractor
from util.metrics.paired import l1_metric, psnr_metric, ssim_metric
from util.metrics.swd import swd_metric

MetricFn = Callable[..., dict[str, float]]


@dataclass(frozen=True)
class Metric:
    """One metric: its name, the result key that ranks checkpoints, its direction, what it needs, its function."""

    name: str  # evaluate.py --metrics / train.py --eval_metrics
    key: str  # the headline result key (--eval_best; ``classifier`` reports ``domain_score``)
    higher_is_better: bool
    paired: bool  # compares fake[i] with real[i]: needs ground-truth pairs
    inception: bool  # needs the TF-Inception weights (fid, kid)
    two_domains: bool  # needs real training images of both domains (the domain classifier)
    fn: MetricFn


METRICS: Mapping[str, Metric] = MappingProxyType({m.name: m for m in (
    Metric("fid", "fid", higher_is_better=False, paired=False, inception=True, two_domains=False, fn=fid_metric),
    Metric("kid", "kid", higher_is_better=False, paired=False, inception=True, two_domains=False, fn=kid_metric),
    Metric("swd", "swd", higher_is_better=False, paired=False, inception=False, two_domains=False, fn=swd_metric),
    Metric("classifier", "domain_score", higher_is_better=True, paired=False, inception=False, two_domains=True,
           fn=classifier_metric),
    Metric("psnr", "psnr", higher_is_better=True, paired=True, inception=False, two_domains=False, fn=psnr_metric),
    Metric("ssim", "ssim", higher_is_better=True, paired=True, inception=False, two_domains=False, fn=ssim_metric),
    Metric("l1", "l1", higher_is_better=False, paired=True, inception=False, two_domains=False, fn=l1_metric),
)})


def list_metrics() -> list[str]:
    """Names of all registered metrics, in registry order."""
    return list(METRICS)


def metric_for_key(key: str) -> Metric:
    """The metric whose headline result is ``key`` (``domain_score`` -> classifier); ValueError listing the keys."""
    for metric in METRICS.values():
        if metric.key == key:
            return metric
    raise ValueError(f"no metric reports '{key}'; valid: {', '.join(m.key for m in METRICS.values())}")


def higher_is_better(key: str) -> bool:
    """Direction of a headline result key: True for psnr/ssim/domain_score, False for swd/fid/kid/l1."""
    try:
        return metric_for_key(key).higher_is_better
    except ValueError:
        raise ValueError(f"no known direction for metric '{key}'") from None


def needing(names: Iterable[str], what: str) -> list[str]:
    """The metrics among ``names`` whose ``what`` (``paired``, ``inception``, ``two_domains``) is true."""
    return [n for n in names if getattr(METRICS[n], what)]


def parse_metric_names(names: str | Iterable[str]) -> list[str]:
    """A comma-separated string or a list of names -> validated list (duplicates dropped, order kept)."""
    items = names.split(",") if isinstance(names, str) else list(names)
    out: list[str] = []
    for raw in items:
        name = raw.strip().lower()
        if not name:
            continue
        if name not in METRICS:
            raise InvalidInputError(f"unknown metric '{raw.strip()}'; valid metrics: {', '.join(list_metrics())}")
        if name not in out:
            out.append(name)
    if not out:
        raise InvalidInputError(f"no metric given; valid metrics: {', '.join(list_metrics())}")
    return out


def _keywords(fn: MetricFn) -> set[str]:
    """Keyword-only parameter names of a metric function."""
    return {p.name for p in inspect.signature(fn).parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY}


def compute_metrics(names: str | Iterable[str], fake: torch.Tensor | None, real: torch.Tensor | None,
                    **kw: Any) -> dict[str, float]:
    """Run the named metrics on uint8 image tensors; each gets the keyword arguments it declares.

    A keyword that no registered metric accepts raises TypeError. When both FID and KID are asked for, the
    Inception network is loaded and the features computed once (pass ``fake_features``/``real_features`` to
    reuse features, e.g. the real set's during training).
    """
    selected = parse_metric_names(names)
    known = set().union(*(_keywords(m.fn) for m in METRICS.values()))
    unknown = sorted(set(kw) - known)
    if unknown:
        raise TypeError(f"unknown metric option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    kw = dict(kw)
    wanted = needing(selected, "inception")
    if wanted and (kw.get("fake_features") is None or kw.get("real_features") is None):
        extractor = get_extractor(kw.pop("inception", None), kw.pop("inception_weights", None),
                                  kw.get("device", "cpu"))
        kw["inception"] = extractor
        if len(wanted) > 1:
            if kw.get("fake_features") is None:
                kw["fake_features"] = extractor(fake)
            if kw.get("real_features") is None:
                kw["real_features"] = extractor(real)
    results: dict[str, float] = {}
    for name in selected:
        fn = METRICS[name].fn
        accepted = _keywords(fn)
        results.update(fn(fake, real, **{k: v for k, v in kw.items() if k in accepted}))
    return results
