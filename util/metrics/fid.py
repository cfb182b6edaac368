"""FID and KID from feature vectors (float64 maths), plus image-level wrappers using the TF-Inception features.

FID (Heusel et al. 2017): ``|mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))`` with the sample means and the
unbiased (N-1) covariances of the 2048-d pool features. The trace of the matrix square root is computed without
a general ``sqrtm``: ``Tr((S1 S2)^(1/2)) = sum(sqrt(eig(R S2 R)))`` with ``R = S1^(1/2)`` from a symmetric
eigendecomposition; ``R S2 R`` is symmetric PSD, so the eigenvalues are real (rounding noise below
``d * eps * max`` is set to 0) and singular covariances (fewer images than dimensions) are fine. From features
with few samples (``n1 * n2 <= d^2``) the same trace is the nuclear norm of the centred cross-product (see
:func:`fid_from_features`), exact and much faster.

KID (Binkowski et al. 2018): the unbiased MMD^2 estimate with the cubic polynomial kernel
``k(x, y) = (x.y / d + 1)^3``, averaged over ``num_subsets`` random subsets drawn without replacement from each
set. Returns the mean and the (population) standard deviation over subsets. The subsets are drawn as
torch-fidelity draws them: one ``numpy.random.RandomState(seed)``, per subset first the indices into set 1, then
into set 2, each with ``choice(n, m, replace=False)``; so the same features and seed give torch-fidelity's
``kid_features_to_metric`` value (its default seed is 2020, ours 0). RandomState's stream is frozen by NumPy,
so the subsets do not change with the NumPy release. Unlike torch-fidelity, which refuses sets smaller than the
subset size, ``subset_size`` is clipped to the smaller set, so small test sets work.
"""
from __future__ import annotations

import numpy as np
import torch

from util.metrics.images import check_uint8
from util.metrics.inception import InceptionFeatureExtractor, get_extractor

ArrayLike = np.ndarray | torch.Tensor


def _as_features(features: ArrayLike, name: str) -> np.ndarray:
    """Features as a float64 NxD numpy array with at least 2 rows."""
    if torch.is_tensor(features):
        features = features.detach().cpu().numpy()
    arr = np.asarray(features, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (N x D) array, got shape {arr.shape}")
    if arr.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 samples for a covariance, got {arr.shape[0]}")
    return arr


def feature_statistics(features: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Mean vector and unbiased covariance matrix (float64) of NxD features."""
    arr = _as_features(features, "features")
    return arr.mean(axis=0), np.cov(arr, rowvar=False)


def _clip_eigenvalues(vals: np.ndarray) -> np.ndarray:
    """Eigenvalues of a PSD matrix with rounding noise (below ``d * eps * max``, or negative) set to 0."""
    tol = max(float(vals.max(initial=0.0)), 0.0) * vals.size * np.finfo(np.float64).eps
    return np.where(vals > tol, vals, 0.0)


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix through ``eigh``."""
    vals, vecs = np.linalg.eigh((matrix + matrix.T) / 2.0)
    return (vecs * np.sqrt(_clip_eigenvalues(vals))) @ vecs.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """``Tr((sigma1 sigma2)^(1/2))`` of PSD matrices as ``sum sqrt eig(R sigma2 R)`` with ``R = sigma1^(1/2)``."""
    root = _sqrt_psd(np.asarray(sigma1, dtype=np.float64))
    middle = root @ np.asarray(sigma2, dtype=np.float64) @ root
    vals = np.linalg.eigvalsh((middle + middle.T) / 2.0)
    return float(np.sqrt(_clip_eigenvalues(vals)).sum())


def frechet_distance(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike) -> float:
    """Frechet distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2), in float64."""
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    s1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    s2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"mismatched statistics: mu {mu1.shape} / {mu2.shape}, sigma {s1.shape} / {s2.shape}")
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt_product(s1, s2))
    return max(value, 0.0)


def fid_from_features(features1: ArrayLike, features2: ArrayLike) -> float:
    """FID between two sets of feature vectors (NxD each), exact either way:

    with few samples (``n1 * n2 <= d^2``) it works in sample space: with centred features X1, X2,
    ``Tr((S1 S2)^(1/2)) = ||X1 X2^T||_* / sqrt((n1-1)(n2-1))`` (the nonzero eigenvalues of S1 S2 are those of
    ``M M^T / ((n1-1)(n2-1))``, M = X1 X2^T), which avoids two DxD eigendecompositions; else covariances.
    """
    f1 = _as_features(features1, "features1")
    f2 = _as_features(features2, "features2")
    if f1.shape[1] != f2.shape[1]:
        raise ValueError(f"feature sizes differ: {f1.shape[1]} vs {f2.shape[1]}")
    (n1, d), n2 = f1.shape, f2.shape[0]
    if n1 * n2 > d * d:
        mu1, s1 = feature_statistics(f1)
        mu2, s2 = feature_statistics(f2)
        return frechet_distance(mu1, s1, mu2, s2)
    mu1, mu2 = f1.mean(axis=0), f2.mean(axis=0)
    x1, x2 = f1 - mu1, f2 - mu2
    tr1 = float((x1 ** 2).sum()) / (n1 - 1)
    tr2 = float((x2 ** 2).sum()) / (n2 - 1)
    tr_sqrt = float(np.linalg.svd(x1 @ x2.T, compute_uv=False).sum()) / np.sqrt((n1 - 1) * (n2 - 1))
    diff = mu1 - mu2
    return max(float(diff @ diff) + tr1 + tr2 - 2.0 * tr_sqrt, 0.0)


def _poly_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cubic polynomial kernel ``(x.y / d + 1)^3`` between the rows of x and y."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def kid_from_features(features1: ArrayLike, features2: ArrayLike, num_subsets: int = 100,
                      subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """KID (mean, std over subsets) with subsets of ``min(subset_size, n1, n2)`` drawn as torch-fidelity does."""
    f1 = _as_features(features1, "features1")
    f2 = _as_features(features2, "features2")
    if f1.shape[1] != f2.shape[1]:
        raise ValueError(f"feature sizes differ: {f1.shape[1]} vs {f2.shape[1]}")
    if num_subsets < 1 or subset_size < 2:
        raise ValueError(f"KID needs num_subsets >= 1 and subset_size >= 2, got {num_subsets}, {subset_size}")
    m = min(subset_size, f1.shape[0], f2.shape[0])
    rng = np.random.RandomState(seed)  # torch-fidelity's generator and draw order (module docstring)
    mmds = np.empty(num_subsets, dtype=np.float64)
    for i in range(num_subsets):
        x = f1[rng.choice(f1.shape[0], m, replace=False)]
        y = f2[rng.choice(f2.shape[0], m, replace=False)]
        kxx = _poly_kernel(x, x)
        kyy = _poly_kernel(y, y)
        kxy = _poly_kernel(x, y)
        within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        mmds[i] = within - 2.0 * kxy.sum() / (m * m)
    return float(mmds.mean()), float(mmds.std())


def _features_for(images: torch.Tensor | None, features: ArrayLike | None, extractor: InceptionFeatureExtractor | None,
                  name: str) -> ArrayLike:
    """Given features, or Inception features of ``images``."""
    if features is not None:
        return features
    if images is None:
        raise ValueError(f"neither {name} images nor {name}_features were given")
    assert extractor is not None
    return extractor(check_uint8(images, name))


def fid_metric(fake: torch.Tensor | None, real: torch.Tensor | None, *,
               inception: InceptionFeatureExtractor | None = None, inception_weights: str | None = None,
               fake_features: ArrayLike | None = None, real_features: ArrayLike | None = None,
               device: str | torch.device = "cpu") -> dict[str, float]:
    """FID of uint8 image sets (or of precomputed Inception features): ``{'fid': value}``."""
    need = fake_features is None or real_features is None
    extractor = get_extractor(inception, inception_weights, device) if need else None
    f_fake = _features_for(fake, fake_features, extractor, "fake")
    f_real = _features_for(real, real_features, extractor, "real")
    return {"fid": fid_from_features(f_fake, f_real)}


def kid_metric(fake: torch.Tensor | None, real: torch.Tensor | None, *,
               inception: InceptionFeatureExtractor | None = None, inception_weights: str | None = None,
               fake_features: ArrayLike | None = None, real_features: ArrayLike | None = None,
               device: str | torch.device = "cpu", kid_subsets: int = 100, kid_subset_size: int = 1000,
               seed: int = 0) -> dict[str, float]:
    """KID of uint8 image sets (or precomputed features): ``{'kid': mean, 'kid_std': std}``."""
    need = fake_features is None or real_features is None
    extractor = get_extractor(inception, inception_weights, device) if need else None
    f_fake = _features_for(fake, fake_features, extractor, "fake")
    f_real = _features_for(real, real_features, extractor, "real")
    mean, std = kid_from_features(f_fake, f_real, kid_subsets, kid_subset_size, seed)
    return {"kid": mean, "kid_std": std}
