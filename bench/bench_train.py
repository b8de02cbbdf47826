"""Training throughput of the conditional StyleGAN2: img/s at 64 and 128 px, ours vs a plain reference.

* ``ours``: the default architecture as ``emoget train-gan`` runs it -- bf16 autocast, modulation by scaling
  activations (one dense convolution per layer for the whole batch), transposed-convolution up-sampling with a
  depthwise blur.
* ``reference``: the same network and weights run the straightforward way -- float32, grouped (per-sample)
  modulated convolutions and rosinality's ``upfirdn2d_native`` for every blur / up-sampling.
* ``ours fp32``: our ops without bf16, to separate the two effects.

Each variant runs full training steps (G step, D step with lazy R1 every 16 steps counted in proportion, EMA) at
batch 8 on random data, interleaved so machine load hits them alike; the figure is the median step time.
Target: ours >= 2x the reference.

``python -m bench train``; ``EMOGET_BENCH_QUICK=1``: 64 px only, fewer steps; ``EMOGET_BENCH_THREADS`` (default 1:
on a shared machine one thread gives stable figures, OpenMP threads degrade badly when oversubscribed).
"""
from __future__ import annotations

import os
import statistics
import tempfile
import time

import torch

from face2emoticon.dataset import ImageDataset
from face2emoticon.networks import set_fused, set_impl
from face2emoticon.train import Trainer, TrainOptions

BATCH = 8


def _trainer(resolution: int, *, variant: str) -> Trainer:
    g = torch.Generator().manual_seed(0)
    ds = ImageDataset(torch.randint(0, 256, (64, 3, resolution, resolution), generator=g, dtype=torch.uint8),
                      torch.arange(64) % 4, ("a", "b", "c", "d"), "0" * 64)
    opts = TrainOptions(resolution=resolution, batch=BATCH, precision="bf16" if variant == "ours" else "fp32",
                        progress=False, augment_p=0.2, r1_interval=16)
    t = Trainer(ds, tempfile.mkdtemp(prefix="bench-train-"), opts)
    if variant == "reference":
        for m in (t.G, t.D):
            set_impl(m, "reference")
        set_fused(t.G, True)
    return t


def _step_time(t: Trainer, *, r1: bool) -> float:
    t.step = 0 if r1 else 1  # step 0 carries the lazy R1 pass, step 1 does not
    t0 = time.perf_counter()
    t.train_step()
    return time.perf_counter() - t0


def measure(resolution: int, *, repeats: int, variants=("ours", "ours fp32", "reference")) -> dict[str, float]:
    """Median seconds per training step (R1 amortised over 16 steps) per variant, interleaved."""
    trainers = {v: _trainer(resolution, variant=v.split()[0] if v != "ours fp32" else "fp32") for v in variants}
    for t in trainers.values():  # warm-up: oneDNN primitive creation, allocator
        _step_time(t, r1=False)
    plain: dict[str, list[float]] = {v: [] for v in variants}
    with_r1: dict[str, float] = {}
    for _ in range(repeats):
        for v, t in trainers.items():
            plain[v].append(_step_time(t, r1=False))
    for v, t in trainers.items():
        with_r1[v] = _step_time(t, r1=True)
    out = {}
    for v in variants:
        base = statistics.median(plain[v])
        out[v] = base + max(with_r1[v] - base, 0.0) / 16
    return out


def check_same_network(resolution: int = 64) -> float:
    """Max |ours fp32 - reference| on one generator batch: both variants must compute the same function."""
    ours, ref = _trainer(resolution, variant="fp32"), _trainer(resolution, variant="reference")
    z = torch.randn(2, ours.G.z_dim, generator=torch.Generator().manual_seed(3))
    c = torch.tensor([0, 1])
    with torch.no_grad():
        return float((ours.G(z, c) - ref.G(z, c)).abs().max())


def main() -> None:
    quick = os.environ.get("EMOGET_BENCH_QUICK") == "1"
    torch.manual_seed(0)
    torch.set_num_threads(int(os.environ.get("EMOGET_BENCH_THREADS", "1")))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH}, default architecture")
    diff = check_same_network()
    print(f"same network check: max |ours fp32 - reference| = {diff:.2e}")
    if diff > 1e-3:
        raise AssertionError("the reference and our ops disagree; the comparison would be meaningless")
    for res, repeats in ((64, 2 if quick else 4), (128, 2 if quick else 3)):
        if quick and res > 64:
            break
        s = measure(res, repeats=repeats)
        ref = s["reference"]
        print(f"{res:4d} px  " + "  ".join(f"{v}: {BATCH / t:6.2f} img/s ({t:5.2f} s/step)" for v, t in s.items()))
        print(f"{res:4d} px  ours vs reference: {ref / s['ours']:.2f}x   bf16 vs fp32 (our ops): "
              f"{s['ours fp32'] / s['ours']:.2f}x   (target >= 2x vs reference)")


if __name__ == "__main__":
    main()
