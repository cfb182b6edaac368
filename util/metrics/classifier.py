"""Domain-classifier score (in the spirit of the papers' FCN score): does a translated image look like the target?

A small CNN is trained to tell domain A (label 0) from domain B (label 1) on the real training images of both
domains, then ``domain_score`` = the share of translated images classified as the target domain, and
``accuracy`` on real test images is the sanity figure (near 1.0 means the score can be trusted).

Protocol: images are resized to ``size`` x ``size`` (64; PIL bicubic when loaded from files, torch bicubic with
antialias for tensors of another size), scaled to [-1, 1]; at most ``max_images`` per domain (the first ones in
sorted order); class-balanced cross-entropy; Adam (lr 1e-3, betas 0.9/0.999); random horizontal flips and
+-size/16 pixel shifts (reflect padding) as augmentation; everything seeded with ``seed`` (the global RNG state
is left untouched). The trained weights are cached as a plain state dict in ``<cache_dir>/domain_classifier/``
named by a SHA-256 of the two file lists (absolute path, byte size, mtime) and the settings, so a second call
with the same data and settings loads instead of retraining. The cache dir is ``cache_dir`` / ``--cache_dir``,
else ``$IMG2IMG_CACHE_DIR``, else ``~/.cache/img2img``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from util.logger import get_logger
from util.metrics.images import PathLike, batches, check_uint8, list_images, load_images, resize_uint8
from util.progress import format_duration

log = get_logger(__name__)

CACHE_ENV_VAR = "IMG2IMG_CACHE_DIR"
ARCH_VERSION = 1
DOMAINS = ("A", "B")


@dataclass(frozen=True)
class ClassifierSettings:
    """Everything that defines a trained classifier (part of the cache key)."""

    size: int = 64
    width: int = 16
    epochs: int = 15
    batch_size: int = 32
    lr: float = 1e-3
    max_images: int = 2000
    seed: int = 0


class DomainNet(nn.Module):
    """Four stride-2 conv blocks (conv 3x3, BatchNorm, LeakyReLU 0.2), global average pool, linear -> 2 logits."""

    def __init__(self, width: int = 16) -> None:
        """Channels width, 2*width, 4*width, 4*width."""
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for c_out in (width, 2 * width, 4 * width, 4 * width):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N x 2) for float images in [-1, 1]."""
        return self.head(self.features(x).mean(dim=(2, 3)))


def _to_input(images: torch.Tensor, size: int, device: torch.device) -> torch.Tensor:
    """uint8 NCHW -> float in [-1, 1] at ``size`` x ``size`` on ``device``."""
    return resize_uint8(images, size).to(device).float() / 127.5 - 1.0


def _domain_index(domain: str) -> int:
    """0 for 'A', 1 for 'B'; a clear error otherwise."""
    if domain not in DOMAINS:
        raise ValueError(f"target domain must be 'A' or 'B', got {domain!r}")
    return DOMAINS.index(domain)


class DomainClassifier:
    """A trained A-vs-B classifier: ``predict``, ``domain_score`` and ``accuracy`` on uint8 image tensors."""

    def __init__(self, net: DomainNet, settings: ClassifierSettings, device: str | torch.device = "cpu",
                 from_cache: bool = False) -> None:
        """Wrap a trained network (put in eval mode)."""
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self.settings = settings
        self.from_cache = from_cache

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
        """Predicted domain index per image (0 = A, 1 = B)."""
        images = check_uint8(images)
        preds = [self.net(_to_input(chunk, self.settings.size, self.device)).argmax(dim=1).cpu()
                 for chunk in batches(images, batch_size)]
        return torch.cat(preds)

    def domain_score(self, fake_images: torch.Tensor, target_domain: str) -> float:
        """Share (0..1) of ``fake_images`` classified as ``target_domain`` ('A' or 'B')."""
        target = _domain_index(target_domain)
        return float((self.predict(fake_images) == target).double().mean().item())

    def accuracy(self, real_A_test: torch.Tensor | None, real_B_test: torch.Tensor | None) -> float:
        """Share of real test images classified as their own domain (either set may be None, not both)."""
        correct, total = 0, 0
        for label, images in enumerate((real_A_test, real_B_test)):
            if images is not None:
                preds = self.predict(images)
                correct += int((preds == label).sum().item())
                total += preds.numel()
        if total == 0:
            raise ValueError("accuracy needs real test images of at least one domain")
        return correct / total


def _augment(x: torch.Tensor, shift: int, gen: torch.Generator) -> torch.Tensor:
    """Random horizontal flips and +-shift pixel translations (reflect padding)."""
    flip = torch.rand(x.shape[0], generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    if shift <= 0:
        return x
    n, _c, h, w = x.shape
    padded = F.pad(x, (shift, shift, shift, shift), mode="reflect")
    dy, dx = torch.randint(0, 2 * shift + 1, (2,), generator=gen).tolist()
    return padded[:, :, dy:dy + h, dx:dx + w]


def train_domain_classifier(images_A: torch.Tensor, images_B: torch.Tensor,
                            settings: ClassifierSettings | None = None,
                            device: str | torch.device = "cpu") -> DomainClassifier:
    """Train a classifier on uint8 image tensors of domain A and domain B (seeded, no caching)."""
    settings = settings or ClassifierSettings()
    images_A = resize_uint8(check_uint8(images_A, "images_A"), settings.size)
    images_B = resize_uint8(check_uint8(images_B, "images_B"), settings.size)
    device = torch.device(device)
    data = torch.cat([images_A, images_B])
    labels = torch.cat([torch.zeros(len(images_A), dtype=torch.long), torch.ones(len(images_B), dtype=torch.long)])
    counts = torch.tensor([len(images_A), len(images_B)], dtype=torch.float32)
    class_weight = (counts.sum() / (2.0 * counts)).to(device)
    gen = torch.Generator().manual_seed(settings.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        net = DomainNet(settings.width).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=settings.lr, betas=(0.9, 0.999))
    shift = max(settings.size // 16, 0)
    net.train()
    started = time.monotonic()
    for epoch in range(1, settings.epochs + 1):
        order = torch.randperm(len(data), generator=gen)
        loss_sum = torch.zeros((), device=device)  # summed on the device: no synchronisation per batch
        correct = torch.zeros((), dtype=torch.long, device=device)
        seen = 0
        for start in range(0, len(order), settings.batch_size):
            idx = order[start:start + settings.batch_size]
            if len(idx) < 2:
                continue  # BatchNorm needs more than one sample
            x = _augment(data[idx].float() / 127.5 - 1.0, shift, gen).to(device)
            target = labels[idx].to(device)
            logits = net(x)
            loss = F.cross_entropy(logits, target, weight=class_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(idx)
            correct += (logits.detach().argmax(dim=1) == target).sum()
            seen += len(idx)
        elapsed = time.monotonic() - started
        log.info(f"domain classifier: epoch {epoch}/{settings.epochs}, loss {float(loss_sum) / max(seen, 1):.4f}, "
                 f"accuracy {int(correct) / max(seen, 1):.3f} on the augmented training batches, "
                 f"ETA {format_duration(elapsed / epoch * (settings.epochs - epoch))}")
    classifier = DomainClassifier(net, settings, device)
    train_acc = classifier.accuracy(images_A, images_B)
    log.info(f"domain classifier trained on {len(images_A)} + {len(images_B)} images "
             f"({settings.epochs} epochs), training accuracy {train_acc:.3f}")
    return classifier


def default_cache_dir() -> Path:
    """``$IMG2IMG_CACHE_DIR`` if set, else ``~/.cache/img2img``."""
    env = os.environ.get(CACHE_ENV_VAR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "img2img"


def _file_list(source: PathLike | Sequence[PathLike], max_images: int) -> list[Path]:
    """The image files of a folder (sorted) or an explicit list, first ``max_images``."""
    if isinstance(source, (str, os.PathLike)):
        paths = list_images(source)
    else:
        paths = [Path(p) for p in source]
    if not paths:
        raise ValueError(f"no training images for the domain classifier in {source}")
    return paths[:max_images]


def cache_key(paths_A: Sequence[Path], paths_B: Sequence[Path], settings: ClassifierSettings) -> str:
    """SHA-256 (hex) of both file lists (absolute path, size, mtime) and the settings."""
    def describe(paths: Sequence[Path]) -> list[tuple[str, int, int]]:
        out = []
        for p in paths:
            st = Path(p).stat()
            out.append((str(Path(p).resolve()), st.st_size, st.st_mtime_ns))
        return out

    payload = {"arch": ARCH_VERSION, "settings": dataclasses.asdict(settings),
               "A": describe(paths_A), "B": describe(paths_B)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _atomic_save(state: dict[str, torch.Tensor], path: Path) -> None:
    """Write a state dict through a temporary file and a rename (no half-written cache file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def get_domain_classifier(train_A: PathLike | Sequence[PathLike], train_B: PathLike | Sequence[PathLike],
                          settings: ClassifierSettings | None = None, cache_dir: PathLike | None = None,
                          device: str | torch.device = "cpu") -> DomainClassifier:
    """Load the cached classifier for these training images and settings, or train and cache it."""
    settings = settings or ClassifierSettings()
    paths_A = _file_list(train_A, settings.max_images)
    paths_B = _file_list(train_B, settings.max_images)
    folder = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    cache_file = folder / "domain_classifier" / f"{cache_key(paths_A, paths_B, settings)}.pth"
    if cache_file.is_file():
        net = DomainNet(settings.width)
        try:
            net.load_state_dict(torch.load(cache_file, map_location="cpu", weights_only=True))
        except Exception as exc:  # noqa: BLE001 - a damaged cache file: say which, then retrain
            log.warning(f"ignoring unreadable domain-classifier cache {cache_file}: {exc}")
        else:
            log.info(f"loaded domain classifier from {cache_file}")
            return DomainClassifier(net, settings, device, from_cache=True)
    log.info(f"training the domain classifier (once for these images and settings; cached in {cache_file.parent}): "
             f"loading {len(paths_A)} + {len(paths_B)} training images")
    images_A = load_images(paths_A, settings.size)
    images_B = load_images(paths_B, settings.size)
    classifier = train_domain_classifier(images_A, images_B, settings, device)
    state = {k: v.detach().cpu() for k, v in classifier.net.state_dict().items()}
    _atomic_save(state, cache_file)
    log.info(f"saved domain classifier to {cache_file}")
    return classifier


def classifier_metric(fake: torch.Tensor, real: torch.Tensor | None, *, target: str,
                      classifier: DomainClassifier | None = None,
                      train_A: PathLike | Sequence[PathLike] | None = None,
                      train_B: PathLike | Sequence[PathLike] | None = None, cache_dir: PathLike | None = None,
                      real_source: torch.Tensor | None = None,
                      device: str | torch.device = "cpu") -> dict[str, float]:
    """Registry entry: ``domain_score`` of ``fake`` for ``target``; ``domain_acc_real`` on the real test images.

    ``real`` holds real test images of the target domain, ``real_source`` (optional) those of the other domain;
    the accuracy covers the sets given. Pass a ``classifier`` or the ``train_A``/``train_B`` folders.
    """
    if classifier is None:
        if train_A is None or train_B is None:
            raise ValueError("the classifier metric needs a trained classifier or train_A and train_B "
                             "(--train_A/--train_B) folders of real training images")
        classifier = get_domain_classifier(train_A, train_B, cache_dir=cache_dir, device=device)
    target_idx = _domain_index(target)
    out = {"domain_score": classifier.domain_score(fake, target)}
    if real is not None or real_source is not None:
        by_label = {target_idx: real, 1 - target_idx: real_source}
        out["domain_acc_real"] = classifier.accuracy(by_label[0], by_label[1])
    return out
