"""TF-Inception (2015-12-05) pool features for FID/KID through torch-fidelity, from a local weights file only.

The network is torch-fidelity's ``FeatureExtractorInceptionV3`` (a bit-exact port of the TensorFlow graph used
by the original FID/KID code): uint8 images of any size are resized inside it to 299x299 with TF1-style
bilinear interpolation, scaled to [-1, 1], and the 2048-d average-pool output (feature ``'2048'``) is used.

The weights are never downloaded: the file comes from ``--inception_weights`` / the ``weights_path`` argument,
else from the ``IMG2IMG_INCEPTION_WEIGHTS`` environment variable, else a clear error says where to get it.
The file is read with ``torch.load(weights_only=True)`` first, so a weights file cannot run code.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch

from util.errors import UserError
from util.logger import get_logger
from util.metrics.images import batches, check_uint8
from util.progress import Progress

log = get_logger(__name__)

ENV_VAR = "IMG2IMG_INCEPTION_WEIGHTS"
WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{WEIGHTS_FILE}"
FEATURE = "2048"
FEATURE_DIM = 2048
PROGRESS_DELAY = 5.0  # seconds before the feature extraction shows progress


class InceptionWeightsError(UserError, FileNotFoundError):
    """The Inception weights file is not given, missing, or not a usable state dict."""


class MissingPackageError(UserError, ImportError):
    """An optional package that the chosen metrics need is not installed."""


def _how_to_get() -> str:
    """Instructions for obtaining and passing the weights file."""
    return (f"FID/KID need torch-fidelity's TF-Inception weights file '{WEIGHTS_FILE}' (about 91 MB), which is "
            f"never downloaded at run time. Download it on a machine with internet access from {WEIGHTS_URL} "
            f"and pass its path with --inception_weights PATH or the environment variable {ENV_VAR}=PATH.")


def resolve_weights_path(weights_path: str | os.PathLike | None = None) -> Path:
    """The weights file from the argument or ``IMG2IMG_INCEPTION_WEIGHTS``; a clear error when absent."""
    source = "--inception_weights"
    if not weights_path:
        weights_path = os.environ.get(ENV_VAR) or None
        source = ENV_VAR
    if not weights_path:
        raise InceptionWeightsError(f"no Inception weights file given. {_how_to_get()}")
    path = Path(weights_path).expanduser()
    if not path.is_file():
        raise InceptionWeightsError(f"Inception weights file not found: {path} (from {source}). {_how_to_get()}")
    return path


def _read_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], bytes]:
    """Load the file safely (weights_only=True) and return the state dict and the raw bytes."""
    raw = path.read_bytes()
    try:
        state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means an unusable file
        raise InceptionWeightsError(f"cannot read Inception weights {path} as a plain state dict: {exc}. "
                                    f"{_how_to_get()}") from exc
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise InceptionWeightsError(f"Inception weights {path} is not a state dict of tensors. {_how_to_get()}")
    fc = state.get("fc.weight")
    if fc is None or tuple(fc.shape) != (1008, FEATURE_DIM):
        raise InceptionWeightsError(f"Inception weights {path} do not have the TF-Inception layout "
                                    f"(fc.weight of shape 1008x2048). {_how_to_get()}")
    return state, raw


def build_network(weights_path: str | os.PathLike | None = None) -> torch.nn.Module:
    """torch-fidelity's TF-Inception feature extractor (feature '2048') loaded from the local weights file."""
    path = resolve_weights_path(weights_path)
    _state, raw = _read_state_dict(path)
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except ImportError as exc:
        raise MissingPackageError("FID/KID need the package torch-fidelity: pip install torch-fidelity") from exc
    # The bytes passed the weights_only check above; handing the same in-memory bytes to torch-fidelity
    # (instead of the path) means it never downloads and never reads a different file.
    try:
        net = FeatureExtractorInceptionV3("inception-v3-compat", [FEATURE],
                                          feature_extractor_weights_path=io.BytesIO(raw))
    except RuntimeError as exc:
        raise InceptionWeightsError(f"Inception weights {path} do not match the TF-Inception network: {exc}. "
                                    f"{_how_to_get()}") from exc
    return net


class InceptionFeatureExtractor:
    """Callable: uint8 Nx3xHxW images -> float64 Nx2048 TF-Inception pool features (as numpy)."""

    def __init__(self, weights_path: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                 batch_size: int = 50) -> None:
        """Load the network from the local weights file (see module docstring) onto ``device``."""
        self.weights_path = resolve_weights_path(weights_path)
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.net = build_network(self.weights_path).to(self.device).eval()
        log.info(f"loaded Inception weights from {self.weights_path}")

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        """Features of ``images`` (uint8 NCHW, any size), computed in batches."""
        images = check_uint8(images)
        out = []
        # a bar (or plain lines in logs) when it takes more than a few seconds
        with Progress(images.shape[0], desc="Inception features", unit="img", delay=PROGRESS_DELAY) as progress:
            for chunk in batches(images, self.batch_size):
                (feat,) = self.net(chunk.to(self.device))
                out.append(feat.double().cpu())
                progress.update(chunk.shape[0])
        return torch.cat(out).numpy()


def get_extractor(inception: InceptionFeatureExtractor | None = None,
                  weights_path: str | os.PathLike | None = None,
                  device: str | torch.device = "cpu") -> InceptionFeatureExtractor:
    """Reuse ``inception`` when given, else build one from ``weights_path`` / the environment variable."""
    if inception is not None:
        return inception
    return InceptionFeatureExtractor(weights_path, device)
