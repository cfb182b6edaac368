"""sRGB <-> CIE Lab (D65, 2° observer) in numpy, with the formulas of ``skimage.color`` (no skimage needed).

``rgb2lab`` takes an H×W×3 image (uint8 in 0..255 or float in 0..1) and returns float32 Lab
(L in [0, 100]); ``lab2rgb`` returns float64 RGB clipped to [0, 1].
"""
from __future__ import annotations

import numpy as np

XYZ_FROM_RGB = np.array([[0.412453, 0.357580, 0.180423],
                         [0.212671, 0.715160, 0.072169],
                         [0.019334, 0.119193, 0.950227]])
RGB_FROM_XYZ = np.linalg.inv(XYZ_FROM_RGB)
D65_WHITE = np.array([0.95047, 1.0, 1.08883])


def _as_float_rgb(rgb: np.ndarray) -> np.ndarray:
    """Return the image as float64 in [0, 1] (integers are scaled by their dtype's maximum)."""
    arr = np.asarray(rgb)
    if arr.ndim < 1 or arr.shape[-1] != 3:
        raise ValueError(f"expected an image with 3 channels last, got shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.float64) / float(np.iinfo(arr.dtype).max)
    return arr.astype(np.float64)


def rgb2xyz(rgb: np.ndarray) -> np.ndarray:
    """sRGB (float in [0, 1] or uint8) to CIE XYZ, float64."""
    arr = _as_float_rgb(rgb)
    linear = np.where(arr > 0.04045, ((arr + 0.055) / 1.055) ** 2.4, arr / 12.92)
    return linear @ XYZ_FROM_RGB.T


def xyz2lab(xyz: np.ndarray) -> np.ndarray:
    """CIE XYZ to CIE Lab under the D65 white point, float64."""
    arr = np.asarray(xyz, dtype=np.float64) / D65_WHITE
    f = np.where(arr > 0.008856, np.cbrt(arr), 7.787 * arr + 16.0 / 116.0)
    fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
    L = 116.0 * fy - 16.0
    a = 500.0 * (fx - fy)
    b = 200.0 * (fy - fz)
    return np.stack([L, a, b], axis=-1)


def lab2xyz(lab: np.ndarray) -> np.ndarray:
    """CIE Lab (D65) to CIE XYZ, float64; negative z (out of gamut) is clipped to 0 as skimage does."""
    arr = np.asarray(lab, dtype=np.float64)
    L, a, b = arr[..., 0], arr[..., 1], arr[..., 2]
    fy = (L + 16.0) / 116.0
    fx = a / 500.0 + fy
    fz = np.maximum(fy - b / 200.0, 0.0)
    f = np.stack([fx, fy, fz], axis=-1)
    xyz = np.where(f > 0.2068966, f ** 3, (f - 16.0 / 116.0) / 7.787)
    return xyz * D65_WHITE


def xyz2rgb(xyz: np.ndarray) -> np.ndarray:
    """CIE XYZ to sRGB float64 clipped to [0, 1]."""
    linear = np.asarray(xyz, dtype=np.float64) @ RGB_FROM_XYZ.T
    positive = np.maximum(linear, 0.0)
    rgb = np.where(linear > 0.0031308, 1.055 * positive ** (1.0 / 2.4) - 0.055, linear * 12.92)
    return np.clip(rgb, 0.0, 1.0)


def rgb2lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB image (uint8 or float in [0, 1], channels last) to float32 CIE Lab."""
    return xyz2lab(rgb2xyz(rgb)).astype(np.float32)


def lab2rgb(lab: np.ndarray) -> np.ndarray:
    """CIE Lab image (channels last) to float64 sRGB in [0, 1]."""
    return xyz2rgb(lab2xyz(lab))
