"""Sliced Wasserstein distance on Laplacian-pyramid patches (Karras et al. 2018, ProGAN), no pretrained network.

Protocol (the ProGAN ``sliced_wasserstein`` metric, made deterministic):

1. Images are uint8 RGB, converted to float32 in [0, 255]. Both sets must have the same height and width.
2. Laplacian pyramid with the 5x5 binomial kernel ``[1 4 6 4 1]^T [1 4 6 4 1] / 256`` (as cv2.pyrDown/pyrUp):
   ``down(x)`` = blur (mirror padding, no edge repeat) then keep every second pixel; ``up(x)`` = zeros
   inserted between pixels, blur with the kernel x4. Levels are taken at resolutions ``min(H, W)``, /2, /4 ...
   while >= 16; level i = G_i - up(G_{i+1}) and the last level is the Gaussian G itself.
3. From each level, 7x7x3 patches (147-d descriptors) are cut at random centres (patches lie fully inside):
   ``nhoods_per_image`` (128) per image; when the sets differ in size both get ``128 * min(n_fake, n_real)``
   patches spread evenly over all images. Patch positions come from a generator seeded with ``seed`` that is
   restarted for each set, so identical sets give identical descriptors (and an SWD of exactly 0).
4. Per level and per set, each channel of the descriptors is normalised to zero mean and unit std over all
   patches and positions of that set (as ProGAN; a global per-channel affine colour change is thus not seen).
5. Per level: ``dir_repeats`` (4) times, ``dirs_per_repeat`` (128) random unit directions (seeded) are drawn,
   both descriptor sets are projected, the projections sorted, and the mean absolute difference taken; the
   level distance is the mean over repeats. Values are multiplied by 1e3 (``SWDx1e3``), reported per level
   (``swd_<resolution>``) and as their mean (``swd``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from util.metrics.images import check_uint8

NHOOD_SIZE = 7
NHOODS_PER_IMAGE = 128
DIR_REPEATS = 4
DIRS_PER_REPEAT = 128
MIN_RESOLUTION = 16


def _binomial_kernel(dtype: torch.dtype) -> torch.Tensor:
    """The 5x5 binomial (Gaussian) kernel of the pyramid, shaped for a depthwise conv over 3 channels."""
    row = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=dtype)
    kernel = torch.outer(row, row) / 256.0
    return kernel.expand(3, 1, 5, 5).contiguous()


def _blur(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Depthwise 5x5 binomial blur with mirror ('reflect') padding."""
    pad = F.pad(x, (2, 2, 2, 2), mode="reflect")
    return F.conv2d(pad, _binomial_kernel(x.dtype) * scale, groups=3)


def pyr_down(x: torch.Tensor) -> torch.Tensor:
    """Blur then keep every second pixel (cv2.pyrDown)."""
    return _blur(x)[:, :, ::2, ::2]


def pyr_up(x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Insert zeros to ``shape`` (H, W), then blur with the kernel x4 (cv2.pyrUp)."""
    up = torch.zeros(x.shape[0], x.shape[1], shape[0], shape[1], dtype=x.dtype)
    up[:, :, ::2, ::2] = x
    return _blur(up, 4.0)


def resolutions_for(height: int, width: int) -> list[int]:
    """Pyramid resolutions min(H, W), /2, ... down to >= 16."""
    res, out = min(height, width), []
    while res >= MIN_RESOLUTION:
        out.append(res)
        res //= 2
    return out


def laplacian_pyramid(images: torch.Tensor, num_levels: int) -> list[torch.Tensor]:
    """Laplacian pyramid of float images: band-pass levels, then the coarsest Gaussian level."""
    levels = [images.float()]
    for _ in range(1, num_levels):
        smaller = pyr_down(levels[-1])
        levels[-1] = levels[-1] - pyr_up(smaller, tuple(levels[-1].shape[-2:]))
        levels.append(smaller)
    return levels


def _positions(n: int, height: int, width: int, total: int, seed: int) -> tuple[torch.Tensor, ...]:
    """Image index and patch centre (y, x) of ``total`` patches spread evenly over ``n`` images (seeded)."""
    gen = torch.Generator().manual_seed(seed)
    half = NHOOD_SIZE // 2
    img = (torch.arange(total) * n) // total
    ys = torch.randint(half, height - half, (total,), generator=gen)
    xs = torch.randint(half, width - half, (total,), generator=gen)
    return img, ys, xs


def _cut(level: torch.Tensor, img: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """The 7x7 patches of ``level`` (k x 3 x 7 x 7) at the given image indices and centres."""
    half = NHOOD_SIZE // 2
    offs = torch.arange(-half, half + 1)
    rows = (ys[:, None] + offs[None, :])[:, None, :, None]
    cols = (xs[:, None] + offs[None, :])[:, None, None, :]
    chans = torch.arange(3)[None, :, None, None]
    return level[img[:, None, None, None], chans, rows, cols]


def descriptors(images: torch.Tensor, total: int, seed: int, chunk: int = 64) -> list[torch.Tensor]:
    """Normalised patch descriptors (total x 147) for every pyramid level, built ``chunk`` images at a time."""
    n, _c, h, w = images.shape
    res = resolutions_for(h, w)
    shapes, (sh, sw) = [], (h, w)
    for _ in res:
        shapes.append((sh, sw))
        sh, sw = (sh + 1) // 2, (sw + 1) // 2
    pos = [_positions(n, lh, lw, total, seed + lvl) for lvl, (lh, lw) in enumerate(shapes)]
    parts: list[list[torch.Tensor]] = [[] for _ in res]
    for start in range(0, n, chunk):
        pyramid = laplacian_pyramid(images[start:start + chunk], len(res))
        for lvl, level in enumerate(pyramid):
            img, ys, xs = pos[lvl]
            keep = (img >= start) & (img < start + chunk)
            parts[lvl].append(_cut(level, img[keep] - start, ys[keep], xs[keep]))
    return [_normalise(torch.cat(p)) for p in parts]


def _normalise(desc: torch.Tensor) -> torch.Tensor:
    """Per-channel zero mean / unit std over all patches and positions; flattened to total x 147."""
    desc = desc - desc.mean(dim=(0, 2, 3), keepdim=True)
    std = desc.std(dim=(0, 2, 3), keepdim=True, unbiased=False)
    desc = desc / torch.where(std > 0, std, torch.ones_like(std))
    return desc.reshape(desc.shape[0], -1)


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, dir_repeats: int = DIR_REPEATS,
                       dirs_per_repeat: int = DIRS_PER_REPEAT, seed: int = 0) -> float:
    """Mean over repeats of the mean |sorted(a.d) - sorted(b.d)| over random unit directions d (seeded)."""
    if a.shape != b.shape or a.dim() != 2:
        raise ValueError(f"descriptor sets must be equal-shape 2-D tensors, got {tuple(a.shape)}, {tuple(b.shape)}")
    gen = torch.Generator().manual_seed(seed)
    results = []
    for _ in range(dir_repeats):
        dirs = torch.randn(a.shape[1], dirs_per_repeat, generator=gen, dtype=torch.float64)
        dirs = (dirs / dirs.norm(dim=0, keepdim=True)).to(a.dtype)
        proj_a = torch.sort(a @ dirs, dim=0).values
        proj_b = torch.sort(b @ dirs, dim=0).values
        results.append((proj_a - proj_b).abs().mean().item())
    return float(sum(results) / len(results))


def swd(fake: torch.Tensor, real: torch.Tensor, seed: int = 0, nhoods_per_image: int = NHOODS_PER_IMAGE,
        dir_repeats: int = DIR_REPEATS, dirs_per_repeat: int = DIRS_PER_REPEAT) -> dict[str, float]:
    """SWD x 1e3 between two uint8 image sets: ``{'swd_<res>': per level, ..., 'swd': mean}`` (see module doc)."""
    fake = check_uint8(fake, "fake")
    real = check_uint8(real, "real")
    if fake.shape[-2:] != real.shape[-2:]:
        raise ValueError(f"SWD needs images of one size: fake {tuple(fake.shape[-2:])} vs real "
                         f"{tuple(real.shape[-2:])} (pass a common --size)")
    res = resolutions_for(*fake.shape[-2:])
    if not res:
        raise ValueError(f"SWD needs images of at least {MIN_RESOLUTION}x{MIN_RESOLUTION}, "
                         f"got {tuple(fake.shape[-2:])}")
    total = nhoods_per_image * min(fake.shape[0], real.shape[0])
    desc_fake = descriptors(fake, total, seed)
    desc_real = descriptors(real, total, seed)
    out: dict[str, float] = {}
    for level, (r, d_fake, d_real) in enumerate(zip(res, desc_fake, desc_real)):
        out[f"swd_{r}"] = 1e3 * sliced_wasserstein(d_fake, d_real, dir_repeats, dirs_per_repeat, seed + level)
    out["swd"] = sum(out.values()) / len(res)
    return out


def swd_metric(fake: torch.Tensor, real: torch.Tensor, *, seed: int = 0) -> dict[str, float]:
    """Registry entry: :func:`swd` with the ProGAN settings."""
    return swd(fake, real, seed=seed)
