"""Evaluation metrics for translated images: registry and ``compute_metrics``.

Every metric takes uint8 Nx3xHxW RGB tensors (``fake`` = translated images, ``real`` = target-domain images;
for the paired metrics pair i is ``fake[i]`` vs ``real[i]``) and returns a dict of floats:

* ``fid`` -> ``fid``; ``kid`` -> ``kid``, ``kid_std`` (TF-Inception features, local weights file: ``inception``
  or ``inception_weights``; see :mod:`util.metrics.inception`)
* ``swd`` -> ``swd_<res>`` per pyramid level and ``swd`` (x1e3; :mod:`util.metrics.swd`)
* ``classifier`` -> ``domain_score``, ``domain_acc_real`` (needs ``target`` and a ``classifier`` or
  ``train_A``/``train_B``; :mod:`util.metrics.classifier`)
* ``psnr``, ``ssim``, ``l1`` (paired; :mod:`util.metrics.paired`)

Use :func:`util.metrics.images.load_images` for folders and :func:`util.metrics.images.from_model_range` for
generator outputs in [-1, 1].
"""
from __future__ import annotations

import inspect
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping

import torch

from util.metrics.classifier import classifier_metric
from util.metrics.fid import fid_metric, kid_metric
from util.metrics.inception import get_extractor
from util.metrics.paired import l1_metric, psnr_metric, ssim_metric
from util.metrics.swd import swd_metric

MetricFn = Callable[..., dict[str, float]]

METRICS: Mapping[str, MetricFn] = MappingProxyType({
    "fid": fid_metric,
    "kid": kid_metric,
    "swd": swd_metric,
    "classifier": classifier_metric,
    "psnr": psnr_metric,
    "ssim": ssim_metric,
    "l1": l1_metric,
})
PAIRED_METRICS = frozenset({"psnr", "ssim", "l1"})
INCEPTION_METRICS = frozenset({"fid", "kid"})


def list_metrics() -> list[str]:
    """Names of all registered metrics, in registry order."""
    return list(METRICS)


def parse_metric_names(names: str | Iterable[str]) -> list[str]:
    """A comma-separated string or a list of names -> validated list (duplicates dropped, order kept)."""
    items = names.split(",") if isinstance(names, str) else list(names)
    out: list[str] = []
    for raw in items:
        name = raw.strip().lower()
        if not name:
            continue
        if name not in METRICS:
            raise ValueError(f"unknown metric '{raw.strip()}'; valid metrics: {', '.join(list_metrics())}")
        if name not in out:
            out.append(name)
    if not out:
        raise ValueError(f"no metric given; valid metrics: {', '.join(list_metrics())}")
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
    known = set().union(*(_keywords(fn) for fn in METRICS.values()))
    unknown = sorted(set(kw) - known)
    if unknown:
        raise TypeError(f"unknown metric option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    kw = dict(kw)
    wanted = INCEPTION_METRICS.intersection(selected)
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
        fn = METRICS[name]
        accepted = _keywords(fn)
        results.update(fn(fake, real, **{k: v for k, v in kw.items() if k in accepted}))
    return results
