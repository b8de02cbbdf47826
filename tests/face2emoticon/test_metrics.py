"""FD-VGG16 / KID-VGG16: the formulas against closed forms, the feature extractor on images."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from face2emoticon.config import GeneratorConfig
from face2emoticon.metrics import (
    FEATURE_DIM,
    KID_SUBSET_SIZE,
    fd_vgg16,
    frechet_distance,
    frechet_distance_from_stats,
    generator_metrics,
    kid,
    kid_from_features,
    kid_subset_size,
    lpips_diversity,
    precision_recall,
    vgg16_features,
)
from face2emoticon.networks import Generator
from face2emoticon.styledata import NODE_DIR


def test_frechet_distance_closed_form():
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    mu_a, mu_b = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    expect = 1 + 0 + 4 + np.sum(a + b - 2 * np.sqrt(a * b))
    assert frechet_distance_from_stats(mu_a, np.diag(a), mu_b, np.diag(b)) == pytest.approx(expect, rel=1e-9)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 3)) * np.sqrt(a) + mu_a
    y = rng.normal(size=(4000, 3)) * np.sqrt(b) + mu_b
    assert frechet_distance(x, y) == pytest.approx(expect, rel=0.05)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)


def test_kid_is_unbiased_and_grows_with_shift():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(200, 16)), rng.normal(size=(200, 16))
    same, same_std = kid_from_features(x, y, num_subsets=20, subset_size=100)
    shifted, _ = kid_from_features(x, y + 0.5, num_subsets=20, subset_size=100)
    assert abs(same) < 3 * same_std + 1e-3
    assert shifted > 10 * abs(same) and shifted > 0.01
    # deterministic for a seed
    assert kid_from_features(x, y, num_subsets=5, seed=3) == kid_from_features(x, y, num_subsets=5, seed=3)


def test_precision_recall_split_fidelity_from_coverage():
    rng = np.random.default_rng(2)
    real = rng.normal(size=(400, 8))
    same = rng.normal(size=(400, 8))
    collapsed = rng.normal(size=(400, 8)) * 0.2  # every sample near the average: faithful, no coverage
    off = rng.normal(size=(400, 8)) + 4.0  # covers a region the real images never reach
    p, r = precision_recall(real, same)
    assert p > 0.8 and r > 0.8
    p, r = precision_recall(real, collapsed)
    assert p > 0.95 and r < 0.3
    p, r = precision_recall(real, off)
    assert p < 0.05 and r < 0.05
    # one real outlier among the samples' neighbours changes the count by exactly one sample
    p, _ = precision_recall(real[:5], np.concatenate([real[:5] * 1.0001, [[50.0] * 8]]), k=1)
    assert p == pytest.approx(5 / 6)
    with pytest.raises(ValueError, match="more than 3"):
        precision_recall(real[:3], same)


@pytest.mark.parametrize("n", [40, 100, 300])
def test_kid_subsets_vary_with_the_default_protocol(n):
    rng = np.random.default_rng(n)
    x, y = rng.normal(size=(n, 16)), rng.normal(size=(n, 16))
    other = rng.normal(size=(n, 16)) * 1.5 + 0.5
    same, same_std = kid_from_features(x, y)
    far, far_std = kid_from_features(x, other)
    # subsets differ even when the sets are no larger than a subset, so the std says how noisy the mean is
    assert same_std > 1e-3 and far_std > 1e-3
    assert abs(same) < same_std  # same distribution: near 0, within the spread of one subset
    assert far > 0.5 and far > 10 * abs(same) and far > 2 * far_std


def test_kid_subset_size():
    assert kid_subset_size(1000, 500) == KID_SUBSET_SIZE == 100
    assert kid_subset_size(150, 120) == 100
    assert kid_subset_size(100, 100) == kid_subset_size(100, 500) == 50  # never the whole smaller set
    assert kid_subset_size(3, 3) == kid_subset_size(2, 9) == 2


def _photos(n: int, seed: int, size: int = 32) -> np.ndarray:
    import skimage.data

    base = torch.from_numpy(skimage.data.astronaut()).permute(2, 0, 1)[None].float()
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):  # random crops of a real photo
        y, x = rng.integers(0, 512 - 192, size=2)
        crop = torch.nn.functional.interpolate(base[..., y: y + 192, x: x + 192], size=(size, size), mode="area")
        out.append(crop[0].permute(1, 2, 0).round().byte().numpy())
    return np.stack(out)


def test_features_and_image_level_metrics():
    real = _photos(12, 0)
    f = vgg16_features(real, size=32)
    assert f.shape == (12, FEATURE_DIM) and f.dtype == np.float64 and (f >= 0).all()
    as_float = torch.from_numpy(real).permute(0, 3, 1, 2).float() / 127.5 - 1
    np.testing.assert_allclose(vgg16_features(as_float, size=32), f, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(vgg16_features(list(real[:5]), size=32, batch_size=3), f[:5], rtol=1e-5, atol=1e-6)
    more_real = _photos(12, 1)
    noise = np.random.default_rng(2).integers(0, 256, size=real.shape, dtype=np.uint8)
    assert fd_vgg16(real, more_real, size=32) < fd_vgg16(real, noise, size=32)
    assert kid(real, noise, size=32, num_subsets=10) > 0.01
    with pytest.raises(ValueError, match="uint8"):
        vgg16_features(np.zeros((2, 8, 8), np.float32))


def test_lpips_diversity_is_zero_for_one_image_repeated():
    varied = _photos(8, 0)
    assert lpips_diversity(np.repeat(varied[:1], 8, 0), pairs=20) == pytest.approx(0.0, abs=1e-6)
    assert lpips_diversity(varied, pairs=20) > 0.05
    assert lpips_diversity(varied, pairs=20, seed=1) == lpips_diversity(varied, pairs=20, seed=1)


def test_generator_metrics_per_class():
    cfg = GeneratorConfig(resolution=16, z_dim=16, w_dim=16, mapping_layers=1, channel_base=128, channel_max=16,
                          class_names=("a", "b"))
    G = Generator(cfg, seed=0)
    real = {"a": _photos(6, 3, 16), "b": _photos(6, 4, 16), "unused": _photos(2, 5, 16)}
    m = generator_metrics(G, real, n_fake=6, size=32)
    assert set(m) == {"a", "b", "mean"}
    assert m["a"]["n_fake"] == 6 and m["a"]["fd_vgg16"] > 0
    assert m["mean"]["fd_vgg16"] == pytest.approx((m["a"]["fd_vgg16"] + m["b"]["fd_vgg16"]) / 2)
    assert all(0 <= m[c][k] <= 1 for c in ("a", "b") for k in ("precision", "recall"))
    assert m["mean"]["recall"] == pytest.approx((m["a"]["recall"] + m["b"]["recall"]) / 2)


def test_fid_figures_measure_the_real_vs_real_floor(tmp_path):
    from PIL import Image

    from face2emoticon.recipes.figures import fid_figures

    cfg = GeneratorConfig(resolution=16, z_dim=16, w_dim=16, mapping_layers=1, channel_base=128, channel_max=16,
                          class_names=("a", "b"))
    for k, name in enumerate(cfg.class_names):
        (tmp_path / "styles" / name).mkdir(parents=True)
        for i, img in enumerate(_photos(10, k, 16)):
            Image.fromarray(img).save(tmp_path / "styles" / name / f"{i:03d}.png")
    figures = fid_figures(Generator(cfg, seed=0), tmp_path, n=5)
    floor = figures["real_vs_real"]
    assert set(floor) == {"a", "b", "mean"} and floor["a"]["n_real"] == floor["a"]["n_fake"] == 5
    # crops of one photo against other crops of it are closer than an untrained generator's samples
    assert floor["mean"]["fd_vgg16"] < figures["mean"]["fd_vgg16"]
    assert set(figures["diversity"]) == {"a", "b"} and figures["diversity"]["a"]["renders"] > 0


@pytest.mark.skipif(shutil.which("node") is None or not (NODE_DIR / "node_modules" / "@dicebear" / "core").exists(),
                    reason="the glasses figures draw with Node.js and the style packages (`make setup`)")
def test_glasses_figures_compare_each_style_with_and_without_glasses():
    from face2emoticon.recipes.figures import glasses_figures
    from face2emoticon.upscale import UpscalerConfig, build

    cfg = GeneratorConfig(resolution=64, z_dim=8, w_dim=8, mapping_layers=1, channel_base=512, channel_max=8,
                          class_names=("avataaars", "micah", "twemoji"))
    out = glasses_figures(Generator(cfg, seed=0), encoder=None, invert_style="avataaars", n=2, steps=1,
                          upscaler=build(UpscalerConfig(channels=8, blocks=1, up_channels=(8, 8))))
    assert out["n"] == 2 and set(out) == {"upscaler", "lanczos", "n", "invert_steps", "strength"}
    for shown in ("upscaler", "lanczos"):  # Twemoji draws no glasses: not counted
        assert set(out[shown]) == {"avataaars", "micah", "all"}
        assert all(0.0 <= v <= 1.0 for v in out[shown].values())
