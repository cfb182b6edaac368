"""Paired metrics against ground truth: PSNR, SSIM and L1, computed per image pair then averaged.

Protocol (inputs are uint8 RGB tensors, pair i = fake[i] vs real[i], same size):
* PSNR on the [0, 255] scale: ``10 log10(255^2 / MSE)`` over all pixels and channels of the pair; identical pairs
  give ``inf`` (and so does the mean over images then).
* SSIM (Wang et al. 2004) on the [0, 255] scale with the standard settings: an 11x11 Gaussian window with
  sigma 1.5, K1 = 0.01, K2 = 0.03, L = 255, computed per channel on RGB with 'valid' filtering (no padding), the
  SSIM map averaged over positions and channels. Images must be at least 11x11.
* L1: mean absolute difference on the [0, 1] scale (pixel / 255).
All maths in float64.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from util.metrics.images import batches, check_uint8

DATA_RANGE = 255.0
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
CHUNK = 16


def _pairs(fake: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate paired uint8 sets (same shape)."""
    fake = check_uint8(fake, "fake")
    real = check_uint8(real, "real")
    if fake.shape != real.shape:
        raise ValueError(f"paired metrics need equal shapes, got fake {tuple(fake.shape)} and real {tuple(real.shape)}")
    return fake, real


def _per_image(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], fake: torch.Tensor,
               real: torch.Tensor) -> torch.Tensor:
    """Apply a float64 per-pair function chunk by chunk (bounded memory for large sets)."""
    fake, real = _pairs(fake, real)
    return torch.cat([fn(f.double(), r.double()) for f, r in zip(batches(fake, CHUNK), batches(real, CHUNK))])


def _psnr(f: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """PSNR of float64 pairs."""
    mse = ((f - r) ** 2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(DATA_RANGE ** 2 / mse)


def psnr_per_image(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """PSNR (dB, [0, 255] scale) of each pair; ``inf`` where the images are identical."""
    return _per_image(_psnr, fake, real)


def _gaussian_1d(dtype: torch.dtype) -> torch.Tensor:
    """Normalised 11-tap Gaussian (sigma 1.5); the 11x11 window is its outer product with itself."""
    coords = torch.arange(SSIM_WINDOW, dtype=dtype) - (SSIM_WINDOW - 1) / 2.0
    g = torch.exp(-(coords ** 2) / (2.0 * SSIM_SIGMA ** 2))
    return g / g.sum()


def _gaussian_filter(t: torch.Tensor) -> torch.Tensor:
    """'Valid' 11x11 Gaussian filtering of every channel, as a row pass then a column pass (the window is separable:
    22 multiply-adds per pixel instead of 121, the same result up to float64 rounding)."""
    channels = t.shape[1]
    g = _gaussian_1d(t.dtype)
    t = F.conv2d(t, g.view(1, 1, 1, SSIM_WINDOW).expand(channels, 1, 1, SSIM_WINDOW), groups=channels)
    return F.conv2d(t, g.view(1, 1, SSIM_WINDOW, 1).expand(channels, 1, SSIM_WINDOW, 1), groups=channels)


def _ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """SSIM of float64 pairs."""
    if min(x.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {tuple(x.shape[-2:])}")
    c1 = (SSIM_K1 * DATA_RANGE) ** 2
    c2 = (SSIM_K2 * DATA_RANGE) ** 2
    # the five local statistics filtered in one call
    mu_x, mu_y, xx, yy, xy = _gaussian_filter(torch.cat([x, y, x * x, y * y, x * y], 1)).chunk(5, dim=1)
    var_x = xx - mu_x ** 2
    var_y = yy - mu_y ** 2
    cov = xy - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return ssim_map.flatten(1).mean(dim=1)


def ssim_per_image(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """SSIM of each pair (see module doc for the exact settings)."""
    return _per_image(_ssim, fake, real)


def l1_per_image(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of each pair on the [0, 1] scale."""
    return _per_image(lambda f, r: (f - r).abs().flatten(1).mean(dim=1) / DATA_RANGE, fake, real)


def _mean(values: torch.Tensor) -> float:
    """Mean of per-image values as a Python float (``inf`` propagates)."""
    return float(values.mean().item())


def psnr_metric(fake: torch.Tensor, real: torch.Tensor) -> dict[str, float]:
    """Registry entry: ``{'psnr': mean PSNR in dB}``."""
    return {"psnr": _mean(psnr_per_image(fake, real))}


def ssim_metric(fake: torch.Tensor, real: torch.Tensor) -> dict[str, float]:
    """Registry entry: ``{'ssim': mean SSIM}``."""
    return {"ssim": _mean(ssim_per_image(fake, real))}


def l1_metric(fake: torch.Tensor, real: torch.Tensor) -> dict[str, float]:
    """Registry entry: ``{'l1': mean absolute error on [0, 1]}``."""
    return {"l1": _mean(l1_per_image(fake, real))}
