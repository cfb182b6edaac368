"""Tests of util.metrics (FID/KID maths, Inception weights plumbing, SWD, domain classifier, paired) and evaluate.py."""
from __future__ import annotations

import io
import json
import logging
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import load_script, shared_dataset
from util.errors import UserError
from util.metrics import METRICS, compute_metrics, list_metrics, parse_metric_names
from util.metrics import classifier as clf
from util.logger import ROOT_NAME
from util.metrics import fid, inception, paired, swd
from util.metrics.images import from_model_range, list_images, load_images, strip_suffix

evaluate = load_script("evaluate")  # by path: a PyPI package is also called "evaluate"


# ----------------------------------------------------------------------------------------------- helpers
def _noise(n: int, size: int, mean: tuple[float, float, float], std: float, seed: int) -> torch.Tensor:
    """uint8 noise images with a per-channel mean (e.g. red-ish or blue-ish)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, size, size, generator=gen) * std + torch.tensor(mean).view(1, 3, 1, 1)
    return x.round().clamp(0, 255).to(torch.uint8)


def _textured(n: int, size: int, seed: int) -> torch.Tensor:
    """Smooth random images (blurred noise), a stand-in for photos."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size // 4, size // 4, generator=gen) * 255
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8)


def _red_smooth(n: int, size: int, seed: int) -> torch.Tensor:
    """Smooth red-ish images: far from blue-ish noise in colour and in texture."""
    return (_textured(n, size, seed).float() * 0.4 + torch.tensor([150.0, 0.0, 0.0]).view(1, 3, 1, 1)).to(torch.uint8)


def _save_pngs(images: torch.Tensor, folder: Path, pattern: str = "{i:03d}.png") -> list[Path]:
    """Write a uint8 NCHW tensor as PNG files."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, img in enumerate(images):
        path = folder / pattern.format(i=i)
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def standin_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised torch-fidelity TF-Inception saved in the layout of the real weights file."""
    tf_inception = pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3")
    cls = tf_inception.FeatureExtractorInceptionV3
    with pytest.MonkeyPatch.context() as mp:
        # Building the class normally loads weights: stub out the download and the loading to keep it random.
        mp.setattr(tf_inception, "load_state_dict_from_url", lambda *a, **k: {})
        mp.setattr(cls, "load_state_dict", lambda self, *a, **k: None)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            net = cls("standin", ["2048"])
            for mod in net.modules():
                if isinstance(mod, torch.nn.Conv2d):  # keep activations O(1) through the depth
                    torch.nn.init.kaiming_normal_(mod.weight, nonlinearity="relu")
    path = tmp_path_factory.mktemp("inception") / inception.WEIGHTS_FILE
    torch.save(net.state_dict(), path)
    return path


class MemoExtractor(inception.InceptionFeatureExtractor):
    """The real extractor, remembering the features of image tensors it has seen (Inception is slow on CPU)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.memo: dict[tuple, np.ndarray] = {}
        self.images_computed = 0

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        key = (tuple(images.shape), images.numpy().tobytes())
        if key not in self.memo:
            self.memo[key] = super().__call__(images)
            self.images_computed += images.shape[0]
        return self.memo[key]


@pytest.fixture(scope="module")
def extractor(standin_weights: Path) -> MemoExtractor:
    """The stand-in network loaded through our plumbing (shared: loading costs a second)."""
    return MemoExtractor(standin_weights, batch_size=4)


@pytest.fixture
def no_weights_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make sure the weights environment variable is not set."""
    monkeypatch.delenv(inception.ENV_VAR, raising=False)


# ----------------------------------------------------------------------------------------------- registry
def test_registry_lists_all_metrics() -> None:
    assert list_metrics() == list(METRICS)
    assert set(list_metrics()) >= {"fid", "kid", "swd", "classifier", "psnr", "ssim", "l1"}
    assert parse_metric_names("SWD, psnr,swd") == ["swd", "psnr"]


def test_unknown_metric_name_lists_valid_names() -> None:
    img = _textured(2, 32, 0)
    with pytest.raises(ValueError, match="unknown metric 'fcn'.*fid.*ssim"):
        compute_metrics(["fcn"], img, img)
    with pytest.raises(ValueError, match="no metric"):
        parse_metric_names(" , ")


def test_unknown_option_is_rejected() -> None:
    img = _textured(2, 32, 0)
    with pytest.raises(TypeError, match="unknown metric option.*colour"):
        compute_metrics("psnr", img, img, colour=True)


def test_inputs_must_be_uint8() -> None:
    with pytest.raises(TypeError, match="uint8.*from_model_range"):
        compute_metrics("l1", torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 16))


@pytest.fixture(scope="module")
def tiny_classifier() -> clf.DomainClassifier:
    """A classifier trained on red-ish (A) vs blue-ish (B) noise, uncached."""
    settings = clf.ClassifierSettings(size=32, width=8, epochs=3, batch_size=16)
    return clf.train_domain_classifier(_noise(24, 32, (200, 40, 40), 30, 1), _noise(24, 32, (40, 40, 200), 30, 2),
                                       settings)


def _kwargs_for(name: str, extractor: inception.InceptionFeatureExtractor,
                classifier: clf.DomainClassifier) -> dict:
    """The options each registered metric needs in the registry-wide test (a new metric must be added here)."""
    table = {"fid": {"inception": extractor}, "kid": {"inception": extractor, "kid_subsets": 10},
             "swd": {}, "classifier": {"classifier": classifier, "target": "B"},
             "psnr": {}, "ssim": {}, "l1": {}}
    assert name in table, f"metric '{name}' has no entry in the registry-wide test: add its options"
    return table[name]


@pytest.mark.parametrize("name", list_metrics())
def test_every_metric_returns_finite_floats_and_separates_sets(
        name: str, extractor: inception.InceptionFeatureExtractor, tiny_classifier: clf.DomainClassifier) -> None:
    real = _noise(3, 32, (40, 40, 200), 30, 10)
    near = _noise(3, 32, (40, 40, 200), 30, 11)
    far = _red_smooth(3, 32, 12)
    kw = _kwargs_for(name, extractor, tiny_classifier)
    res_near = compute_metrics([name], near, real, **kw)
    res_far = compute_metrics([name], far, real, **kw)
    assert res_near and set(res_near) == set(res_far)
    for value in list(res_near.values()) + list(res_far.values()):
        assert isinstance(value, float) and math.isfinite(value)
    main = {"fid": "fid", "kid": "kid", "swd": "swd", "classifier": "domain_score",
            "psnr": "psnr", "ssim": "ssim", "l1": "l1"}[name]
    higher_is_better = main in {"domain_score", "psnr", "ssim"}
    if higher_is_better:
        assert res_near[main] > res_far[main]
    else:
        assert res_near[main] < res_far[main]


# ----------------------------------------------------------------------------------------------- FID / KID maths
def test_fid_identical_sets_is_zero() -> None:
    feats = np.random.default_rng(0).normal(size=(300, 32))
    assert abs(fid.fid_from_features(feats, feats.copy())) < 1e-6
    mu, sigma = fid.feature_statistics(feats)
    assert abs(fid.frechet_distance(mu, sigma, mu, sigma)) < 1e-6


def test_fid_identical_singular_covariance_is_zero() -> None:
    feats = np.random.default_rng(1).normal(size=(10, 64))  # fewer samples than dimensions
    assert abs(fid.fid_from_features(feats, feats)) < 1e-6
    assert fid.fid_from_features(feats, feats + 1.0) == pytest.approx(64.0, rel=1e-6)


def test_fid_closed_form_for_commuting_covariances() -> None:
    rng = np.random.default_rng(2)
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    a, b = np.array([1.0, 2.0, 3.0, 4.0, 5.0]), np.array([0.5, 4.0, 1.0, 9.0, 2.0])
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    expected = float(((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum())
    got = fid.frechet_distance(mu1, q @ np.diag(a) @ q.T, mu2, q @ np.diag(b) @ q.T)
    assert got == pytest.approx(expected, rel=1e-9)


def test_fid_closed_form_for_non_commuting_2x2() -> None:
    s1 = np.array([[2.0, 0.5], [0.5, 1.0]])
    s2 = np.array([[1.0, -0.3], [-0.3, 3.0]])
    m = s1 @ s2  # for 2x2 with positive eigenvalues: Tr sqrt(M) = sqrt(Tr M + 2 sqrt(det M))
    tr_sqrt = math.sqrt(np.trace(m) + 2 * math.sqrt(np.linalg.det(m)))
    mu1, mu2 = np.array([0.0, 1.0]), np.array([2.0, -1.0])
    expected = 8.0 + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt
    assert fid.trace_sqrt_product(s1, s2) == pytest.approx(tr_sqrt, rel=1e-12)
    assert fid.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("n", [6, 40])  # fewer samples than dimensions (sample-space route) and more
def test_fid_from_features_agrees_with_statistics_route(n: int) -> None:
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(n, 8)), rng.normal(size=(n + 3, 8)) * 1.5 + 0.3
    mu1, s1 = fid.feature_statistics(x)
    mu2, s2 = fid.feature_statistics(y)
    assert fid.fid_from_features(x, y) == pytest.approx(fid.frechet_distance(mu1, s1, mu2, s2), rel=1e-9)


def test_fid_from_samples_of_known_gaussians() -> None:
    rng = np.random.default_rng(3)
    n, d = 40000, 3
    x = rng.normal(size=(n, d))  # N(0, I)
    y = rng.normal(size=(n, d)) * 2.0 + np.array([1.0, 0.0, -1.0])  # N(mu, 4 I)
    expected = 2.0 + d * (1.0 - 2.0) ** 2  # |mu|^2 + sum (sqrt(1) - sqrt(4))^2 = 5
    assert fid.fid_from_features(x, y) == pytest.approx(expected, abs=0.1)


def test_fid_kid_agree_with_torch_fidelity() -> None:
    tf_fid = pytest.importorskip("torch_fidelity.metric_fid")
    tf_kid = pytest.importorskip("torch_fidelity.metric_kid")
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(80, 12)), rng.normal(size=(80, 12)) * 1.3 + 0.2
    ref = tf_fid.fid_statistics_to_metric(tf_fid.fid_features_to_statistics(torch.from_numpy(x)),
                                          tf_fid.fid_features_to_statistics(torch.from_numpy(y)), False)
    assert fid.fid_from_features(x, y) == pytest.approx(ref[tf_fid.KEY_METRIC_FID], rel=1e-9)
    # One subset as large as the sets = the full sets in both implementations (MMD ignores the order).
    ref = tf_kid.kid_features_to_metric(torch.from_numpy(x), torch.from_numpy(y), kid_subsets=1,
                                        kid_subset_size=80, verbose=False)
    assert fid.kid_from_features(x, y, num_subsets=1)[0] == pytest.approx(ref[tf_kid.KEY_METRIC_KID_MEAN], rel=1e-9)


@pytest.mark.parametrize("seed", [0, 2020])
def test_kid_subsets_are_torch_fidelitys(seed: int) -> None:
    """Several subsets smaller than the sets: the same subsets, mean and std as torch-fidelity for one seed."""
    tf_kid = pytest.importorskip("torch_fidelity.metric_kid")
    rng = np.random.default_rng(11)
    x, y = rng.normal(size=(60, 8)), rng.normal(size=(50, 8)) * 1.2 + 0.3
    ref = tf_kid.kid_features_to_metric(torch.from_numpy(x), torch.from_numpy(y), kid_subsets=7,
                                        kid_subset_size=20, rng_seed=seed, verbose=False)
    mean, std = fid.kid_from_features(x, y, num_subsets=7, subset_size=20, seed=seed)
    assert mean == pytest.approx(ref[tf_kid.KEY_METRIC_KID_MEAN], rel=1e-12)
    assert std == pytest.approx(ref[tf_kid.KEY_METRIC_KID_STD], rel=1e-9)
    other, _ = fid.kid_from_features(x, y, num_subsets=7, subset_size=20, seed=seed + 1)
    assert other != pytest.approx(mean, rel=1e-6)  # the subsets do depend on the seed


def test_fid_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="at least 2 samples"):
        fid.fid_from_features(np.zeros((1, 4)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="mismatched"):
        fid.frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Textbook unbiased MMD^2 with the cubic polynomial kernel, by explicit loops over pairs."""
    d = x.shape[1]

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return float((a @ b / d + 1.0) ** 3)

    m, n = len(x), len(y)
    kxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kyy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return kxx + kyy - 2 * kxy


def test_kid_matches_textbook_mmd_and_clips_subset_size() -> None:
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(12, 5)), rng.normal(size=(12, 5)) + 0.5
    mean, std = fid.kid_from_features(x, y, num_subsets=1, subset_size=1000)  # clipped to 12 = the full sets
    assert mean == pytest.approx(_mmd2_unbiased(x, y), rel=1e-10)
    assert std == 0.0


def test_kid_identical_near_zero_shifted_positive() -> None:
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(200, 16)), rng.normal(size=(200, 16))
    same, _ = fid.kid_from_features(x, x, num_subsets=20, subset_size=100)
    independent, _ = fid.kid_from_features(x, y, num_subsets=20, subset_size=100)
    shifted, _ = fid.kid_from_features(x, x + 1.0, num_subsets=20, subset_size=100)
    more, _ = fid.kid_from_features(x, x + 2.0, num_subsets=20, subset_size=100)
    assert abs(same) < 0.02 * shifted and abs(independent) < 0.02 * shifted
    assert 0 < shifted < more
    assert fid.kid_from_features(x, x + 1.0, 5, 30, seed=7) == fid.kid_from_features(x, x + 1.0, 5, 30, seed=7)
    assert fid.kid_from_features(x[:5], y[:7], num_subsets=3, subset_size=1000)[0] != 0.0  # clipped to 5


# ----------------------------------------------------------------------------------------------- Inception plumbing
def test_missing_weights_gives_clear_error(no_weights_env: None, tmp_path: Path) -> None:
    with pytest.raises(inception.InceptionWeightsError) as err:
        inception.resolve_weights_path(None)
    msg = str(err.value)
    assert inception.WEIGHTS_FILE in msg and "--inception_weights" in msg and inception.ENV_VAR in msg
    absent = tmp_path / "nowhere.pth"
    with pytest.raises(inception.InceptionWeightsError, match="not found: .*nowhere.pth"):
        inception.InceptionFeatureExtractor(absent)
    img = _textured(2, 32, 0)
    with pytest.raises(inception.InceptionWeightsError, match=inception.ENV_VAR):
        compute_metrics("fid", img, img)


def test_weights_path_from_environment(monkeypatch: pytest.MonkeyPatch, standin_weights: Path) -> None:
    monkeypatch.setenv(inception.ENV_VAR, str(standin_weights))
    assert inception.resolve_weights_path(None) == standin_weights
    monkeypatch.setenv(inception.ENV_VAR, str(standin_weights.parent / "missing.pth"))
    with pytest.raises(inception.InceptionWeightsError, match=f"missing.pth.*{inception.ENV_VAR}"):
        inception.resolve_weights_path(None)


def test_bad_weights_files_are_rejected(tmp_path: Path) -> None:
    wrong_layout = tmp_path / "wrong.pth"
    torch.save({"fc.weight": torch.zeros(10, 10)}, wrong_layout)
    with pytest.raises(inception.InceptionWeightsError, match="wrong.pth.*layout"):
        inception.build_network(wrong_layout)
    not_tensors = tmp_path / "code.pth"
    torch.save({"fc.weight": torch.zeros(1008, 2048), "extra": Path("x")}, not_tensors)
    with pytest.raises(inception.InceptionWeightsError, match="code.pth"):
        inception.build_network(not_tensors)
    missing_keys = tmp_path / "partial.pth"
    torch.save({"fc.weight": torch.zeros(1008, 2048)}, missing_keys)
    with pytest.raises(inception.InceptionWeightsError, match="partial.pth.*do not match"):
        inception.build_network(missing_keys)


def test_standin_weights_load_and_give_pool_features(standin_weights: Path, extractor: MemoExtractor,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    tf_inception = pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3")
    monkeypatch.setattr(tf_inception, "load_state_dict_from_url", lambda *a, **k: pytest.fail("download attempted"))
    # The network holds exactly the tensors of the file, and is asked for the 2048-d pool features.
    saved = torch.load(standin_weights, weights_only=True)
    loaded = extractor.net.state_dict()
    assert set(saved) == set(loaded) and all(torch.equal(saved[k], loaded[k]) for k in saved)
    assert isinstance(extractor.net, tf_inception.FeatureExtractorInceptionV3)
    assert list(extractor.net.features_list) == [inception.FEATURE]
    images = _textured(2, 48, 20)
    feats = extractor(images)
    assert feats.shape == (2, inception.FEATURE_DIM) and feats.dtype == np.float64
    assert np.isfinite(feats).all() and feats.std(axis=0).max() > 0  # images give different features
    with torch.no_grad():
        (direct,) = extractor.net(images[1:])
    np.testing.assert_allclose(feats[1:], direct.double().numpy(), rtol=1e-6, atol=1e-7)


def test_fid_kid_through_inception(extractor: MemoExtractor) -> None:
    a, b = _noise(3, 32, (40, 40, 200), 30, 10), _red_smooth(3, 32, 12)
    same = compute_metrics("fid,kid", a, a.clone(), inception=extractor, kid_subsets=10)
    assert abs(same["fid"]) < 1e-4 and abs(same["kid"]) < 1e-3
    diff = compute_metrics("fid,kid", a, b, inception=extractor, kid_subsets=10)
    assert diff["fid"] > 1e-3 and diff["kid"] > 0
    # Precomputed features give the same answer without any network.
    feats = {"fake_features": extractor(a), "real_features": extractor(b)}
    assert compute_metrics("fid", None, None, **feats)["fid"] == pytest.approx(diff["fid"], rel=1e-9)


# ----------------------------------------------------------------------------------------------- SWD
def test_laplacian_pyramid_reconstructs_and_kills_constants() -> None:
    img = _textured(2, 64, 40).float()
    levels = swd.laplacian_pyramid(img, 3)
    assert [tuple(lv.shape[-2:]) for lv in levels] == [(64, 64), (32, 32), (16, 16)]
    rebuilt = levels[-1]
    for band in reversed(levels[:-1]):
        rebuilt = band + swd.pyr_up(rebuilt, tuple(band.shape[-2:]))
    torch.testing.assert_close(rebuilt, img, atol=1e-3, rtol=0)
    flat = swd.laplacian_pyramid(torch.full((1, 3, 32, 32), 77.0), 2)
    assert flat[0].abs().max() < 1e-3 and torch.allclose(flat[1], torch.full_like(flat[1], 77.0))


def test_swd_identical_zero_and_monotone_in_shift() -> None:
    real = _textured(6, 64, 50)
    same = swd.swd(real, real.clone())
    assert set(same) == {"swd_64", "swd_32", "swd_16", "swd"}
    assert all(v == 0.0 for v in same.values())
    values = []
    for sigma in (4.0, 16.0, 48.0):
        noise = torch.randn(real.shape, generator=torch.Generator().manual_seed(51)) * sigma
        shifted = (real.float() + noise).round().clamp(0, 255).to(torch.uint8)
        values.append(swd.swd(shifted, real)["swd"])
    assert 0 < values[0] < values[1] < values[2]
    assert swd.swd(real, _textured(6, 64, 52)) == swd.swd(real, _textured(6, 64, 52))  # seeded


def test_swd_unequal_set_sizes_and_errors() -> None:
    out = swd.swd(_textured(3, 32, 60), _textured(5, 32, 61))
    assert set(out) == {"swd_32", "swd_16", "swd"} and out["swd"] > 0
    with pytest.raises(ValueError, match="one size"):
        swd.swd(_textured(2, 32, 0), _textured(2, 64, 0))
    with pytest.raises(ValueError, match="at least 16"):
        swd.swd(_textured(2, 8, 0), _textured(2, 8, 0))


def test_swd_on_real_photos_prefers_same_domain() -> None:
    root = shared_dataset("apple2orange")
    apples = load_images(root / "testA", size=64, max_images=24)
    oranges = load_images(root / "testB", size=64, max_images=12)
    within = swd.swd(apples[:12], apples[12:24])["swd"]
    across = swd.swd(apples[:12], oranges)["swd"]
    assert within < across


# ----------------------------------------------------------------------------------------------- classifier
@pytest.fixture
def two_domains(tmp_path: Path) -> tuple[Path, Path]:
    """Folders of red-ish (A) and blue-ish (B) noise PNGs."""
    a = _save_pngs(_noise(24, 32, (200, 40, 40), 30, 70), tmp_path / "trainA")
    b = _save_pngs(_noise(24, 32, (40, 40, 200), 30, 71), tmp_path / "trainB")
    return a[0].parent, b[0].parent


def test_classifier_separates_domains_and_uses_cache(two_domains: tuple[Path, Path], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    train_a, train_b = two_domains
    settings = clf.ClassifierSettings(size=32, width=8, epochs=3, batch_size=16)
    rng_before = torch.get_rng_state()
    first = clf.get_domain_classifier(train_a, train_b, settings, cache_dir=tmp_path / "cache")
    assert torch.equal(rng_before, torch.get_rng_state())  # training leaves the global RNG alone
    assert not first.from_cache
    files = list((tmp_path / "cache" / "domain_classifier").glob("*.pth"))
    assert len(files) == 1
    mtime = files[0].stat().st_mtime_ns

    test_a, test_b = _noise(16, 32, (200, 40, 40), 30, 72), _noise(16, 32, (40, 40, 200), 30, 73)
    assert first.accuracy(test_a, test_b) >= 0.95
    assert first.domain_score(test_a, "A") >= 0.95
    assert first.domain_score(test_a, "B") <= 0.05
    with pytest.raises(ValueError, match="'A' or 'B'"):
        first.domain_score(test_a, "C")

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("retrained although a cached classifier exists")

    monkeypatch.setattr(clf, "train_domain_classifier", no_training)
    second = clf.get_domain_classifier(train_a, train_b, settings, cache_dir=tmp_path / "cache")
    assert second.from_cache and files[0].stat().st_mtime_ns == mtime
    assert torch.equal(second.predict(test_b), first.predict(test_b))
    other = clf.ClassifierSettings(size=32, width=8, epochs=4, batch_size=16)
    assert clf.cache_key(list_images(train_a), list_images(train_b), other) != files[0].stem


def test_classifier_metric_from_folders(two_domains: tuple[Path, Path], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(clf.CACHE_ENV_VAR, str(tmp_path / "envcache"))
    assert clf.default_cache_dir() == tmp_path / "envcache"
    fakes = _noise(8, 32, (190, 50, 50), 30, 80)  # translated towards A
    real_a, real_b = _noise(8, 32, (200, 40, 40), 30, 81), _noise(8, 32, (40, 40, 200), 30, 82)
    train_a, train_b = two_domains
    out = compute_metrics("classifier", fakes, real_a, target="A", train_A=train_a, train_B=train_b,
                          real_source=real_b)
    assert out["domain_score"] >= 0.95 and out["domain_acc_real"] >= 0.95
    assert len(list((tmp_path / "envcache" / "domain_classifier").glob("*.pth"))) == 1
    with pytest.raises(ValueError, match="train_A"):
        compute_metrics("classifier", fakes, real_a, target="A")


# ----------------------------------------------------------------------------------------------- paired
def test_paired_identical_images() -> None:
    img = _textured(2, 32, 90)
    out = compute_metrics("psnr,ssim,l1", img, img.clone())
    assert out["psnr"] == math.inf and out["ssim"] == 1.0 and out["l1"] == 0.0


def test_paired_hand_values() -> None:
    real = torch.zeros(1, 3, 16, 16, dtype=torch.uint8)
    fake = torch.full((1, 3, 16, 16), 10, dtype=torch.uint8)
    out = compute_metrics("psnr,ssim,l1", fake, real)
    assert out["psnr"] == pytest.approx(10 * math.log10(255 ** 2 / 100.0), abs=1e-9)  # MSE 100 -> 28.1308 dB
    assert out["l1"] == pytest.approx(10 / 255)
    c1 = (0.01 * 255) ** 2  # constant images: SSIM = (2ab + C1) / (a^2 + b^2 + C1)
    assert out["ssim"] == pytest.approx(c1 / (100 + c1), rel=1e-9)
    # Per image, then the mean: two pairs with MSE 100 and 400.
    fake2 = torch.cat([fake, torch.full((1, 3, 16, 16), 20, dtype=torch.uint8)])
    real2 = torch.cat([real, real])
    expected = (10 * math.log10(255 ** 2 / 100.0) + 10 * math.log10(255 ** 2 / 400.0)) / 2
    assert paired.psnr_metric(fake2, real2)["psnr"] == pytest.approx(expected, abs=1e-9)


def test_paired_large_sets_are_chunked_per_image() -> None:
    fake, real = _textured(paired.CHUNK + 5, 16, 93), _textured(paired.CHUNK + 5, 16, 94)
    for fn in (paired.psnr_per_image, paired.ssim_per_image, paired.l1_per_image):
        whole = fn(fake, real)
        single = torch.cat([fn(fake[i:i + 1], real[i:i + 1]) for i in range(len(fake))])
        assert whole.shape == (len(fake),)
        torch.testing.assert_close(whole, single, rtol=1e-12, atol=1e-12)


def test_ssim_matches_scikit_image() -> None:
    metrics_mod = pytest.importorskip("skimage.metrics")
    a, b = _textured(1, 40, 91), _noise(1, 40, (120, 130, 140), 40, 92)
    b = ((a.int() + b.int()) // 2).to(torch.uint8)
    ref = metrics_mod.structural_similarity(a[0].permute(1, 2, 0).numpy(), b[0].permute(1, 2, 0).numpy(),
                                            channel_axis=2, gaussian_weights=True, sigma=1.5,
                                            use_sample_covariance=False, data_range=255)
    assert paired.ssim_metric(a, b)["ssim"] == pytest.approx(ref, abs=1e-6)


def test_separable_ssim_filter_equals_the_2d_window() -> None:
    """The row-then-column Gaussian pass equals one 11x11 convolution with the outer-product window."""
    x = _textured(2, 37, 95).double()
    g = paired._gaussian_1d(torch.float64)
    window = torch.outer(g, g).expand(3, 1, 11, 11)
    expected = torch.nn.functional.conv2d(x, window, groups=3)
    torch.testing.assert_close(paired._gaussian_filter(x), expected, rtol=1e-12, atol=1e-9)
    assert float(g.sum()) == pytest.approx(1.0, abs=1e-15) and int(g.argmax()) == 5


def test_paired_shape_errors() -> None:
    with pytest.raises(ValueError, match="equal shapes"):
        paired.psnr_metric(_textured(2, 32, 0), _textured(3, 32, 0))
    with pytest.raises(ValueError, match="at least 11x11"):
        paired.ssim_metric(_textured(1, 8, 0), _textured(1, 8, 0))


# ----------------------------------------------------------------------------------------------- images
def test_load_images_suffix_size_and_errors(tmp_path: Path) -> None:
    _save_pngs(_textured(2, 32, 1), tmp_path / "res" / "images", "img{i}_fake_B.png")
    _save_pngs(_textured(2, 32, 2), tmp_path / "res" / "images", "img{i}_real_A.png")
    (tmp_path / "res" / "images" / "notes.txt").write_text("not an image")
    folder = tmp_path / "res"
    assert len(list_images(folder)) == 4  # recursive, non-images skipped
    fakes = load_images(folder, size=24, suffix="_fake_B")
    assert fakes.shape == (2, 3, 24, 24) and fakes.dtype == torch.uint8
    assert strip_suffix("x/img1_fake_B.png", "_fake_B") == "img1"
    _save_pngs(_textured(1, 16, 3), tmp_path / "mixed")
    _save_pngs(_textured(1, 32, 4), tmp_path / "mixed", "z{i}.png")
    with pytest.raises(ValueError, match="z0.png.*--size"):
        load_images(tmp_path / "mixed")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images.*empty"):
        load_images(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="broken.png"):
        load_images(tmp_path / "bad")


def test_from_model_range() -> None:
    x = torch.tensor([-1.0, 0.0, 1.0, 2.0]).view(1, 1, 1, 4)
    assert from_model_range(x).flatten().tolist() == [0, 127, 255, 255] * 3


# ----------------------------------------------------------------------------------------------- evaluate.py
def test_cli_paired_results_folder(tmp_path: Path) -> None:
    images = tmp_path / "results" / "exp" / "test_latest" / "images"
    real = _textured(3, 32, 100)
    _save_pngs(real, images, "p{i}_real_B.png")
    _save_pngs(real, images, "p{i}_fake_B.png")
    _save_pngs(_textured(3, 32, 101), images, "p{i}_real_A.png")
    out_json = tmp_path / "out" / "metrics.json"
    res = evaluate.main(["--fake_dir", str(images), "--fake_suffix", "_fake_B", "--real_dir", str(images),
                         "--real_suffix", "_real_B", "--paired", "--metrics", "psnr,ssim,l1,swd",
                         "--json", str(out_json)])
    assert res["psnr"] == math.inf and res["ssim"] == 1.0 and res["swd"] == 0.0
    saved = json.loads(out_json.read_text())
    assert saved["results"]["psnr"] == "inf" and saved["num_fake"] == 3 and saved["paired"] is True
    os.remove(images / "p2_real_B.png")
    with pytest.raises(UserError, match="no ground truth.*p2"):
        evaluate.main(["--fake_dir", str(images), "--fake_suffix", "_fake_B", "--real_dir", str(images),
                       "--real_suffix", "_real_B", "--paired", "--metrics", "psnr"])
    with pytest.raises(UserError, match="--paired"):
        evaluate.main(["--fake_dir", str(images), "--real_dir", str(images), "--metrics", "ssim"])


def test_cli_fid_kid_with_weights_flag_and_without(tmp_path: Path, standin_weights: Path,
                                                   no_weights_env: None) -> None:
    fake_dir = _save_pngs(_textured(2, 32, 110), tmp_path / "fake")[0].parent
    real_dir = _save_pngs(_noise(2, 32, (128, 128, 128), 60, 111), tmp_path / "real")[0].parent
    args = ["--fake_dir", str(fake_dir), "--real_dir", str(real_dir), "--metrics", "fid,kid"]
    with pytest.raises(UserError, match=f"--inception_weights.*{inception.ENV_VAR}"):
        evaluate.main(args)
    res = evaluate.main(args + ["--inception_weights", str(standin_weights), "--json", str(tmp_path / "m.json")])
    assert set(res) == {"fid", "kid", "kid_std"} and res["fid"] > 0
    assert json.loads((tmp_path / "m.json").read_text())["results"]["fid"] == pytest.approx(res["fid"])


def test_cli_unknown_metric(tmp_path: Path) -> None:
    folder = _save_pngs(_textured(2, 32, 0), tmp_path / "f")[0].parent
    with pytest.raises(UserError, match="unknown metric 'fcn'"):
        evaluate.main(["--fake_dir", str(folder), "--real_dir", str(folder), "--metrics", "fcn"])


# ----------------------------------------------------------------------------------------------- progress
@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch):
    """The framework's log records, each once (its logger does not propagate once an entry point set it up)."""
    root = logging.getLogger(ROOT_NAME)
    monkeypatch.setattr(root, "propagate", False)
    root.addHandler(caplog.handler)
    with caplog.at_level("INFO", logger=ROOT_NAME):
        yield caplog
    root.removeHandler(caplog.handler)


def test_classifier_training_reports_each_epoch(logged: pytest.LogCaptureFixture) -> None:
    """Training the domain classifier is never silent: one line per epoch with loss, accuracy and ETA."""
    settings = clf.ClassifierSettings(size=32, width=8, epochs=3, batch_size=16)
    clf.train_domain_classifier(_noise(24, 32, (200, 40, 40), 30, 1), _noise(24, 32, (40, 40, 200), 30, 2), settings)
    lines = [r.getMessage() for r in logged.records if r.getMessage().startswith("domain classifier: epoch")]
    assert len(lines) == 3, lines
    pattern = r"domain classifier: epoch (\d)/3, loss (\d+\.\d{4}), accuracy (\d\.\d{3}) on the augmented " \
              r"training batches, ETA (\d\d:\d\d)"
    found = [re.fullmatch(pattern, line) for line in lines]
    assert all(found), lines
    assert [m.group(1) for m in found] == ["1", "2", "3"] and found[-1].group(4) == "00:00"
    assert all(0.0 <= float(m.group(3)) <= 1.0 and float(m.group(2)) > 0 for m in found)


def test_inception_features_show_progress(extractor: MemoExtractor, logged: pytest.LogCaptureFixture,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A long feature extraction shows its progress (here without the few seconds' delay; stderr not a terminal:
    plain lines through the logger)."""
    monkeypatch.setattr(inception, "PROGRESS_DELAY", 0.0)
    monkeypatch.setattr("sys.stderr", io.StringIO())
    inception.InceptionFeatureExtractor.__call__(extractor, _textured(6, 32, 11))
    lines = [r.getMessage() for r in logged.records if r.getMessage().startswith("Inception features")]
    assert len(lines) == 1 and lines[0].startswith("Inception features: 6/6 (100%)"), lines
