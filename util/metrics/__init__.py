"""Evaluation metrics for translated images: the one metric table (``METRICS``) and ``compute_metrics``.

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

import importlib
from typing import Any, List

# The names re-exported from util.metrics.registry; it (and with it the Inception network, the domain classifier
# and tqdm) is imported on the first access, so ``import util.metrics.images`` loads that small module only.
_REGISTRY = "util.metrics.registry"
__all__ = ["METRICS", "Metric", "MetricFn", "compute_metrics", "higher_is_better", "list_metrics", "metric_for_key",
           "needing", "parse_metric_names"]


def __getattr__(name: str) -> Any:
    """``util.metrics.X`` for a name of the metric table: imported from the registry on first use."""
    if name in __all__:
        value = getattr(importlib.import_module(_REGISTRY), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> List[str]:
    """The module's names, the lazily re-exported ones included."""
    return sorted(set(globals()) | set(__all__))
