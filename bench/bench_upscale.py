"""The ×4 upscaler of stills on one CPU thread: ms per 64→256 image against PIL Lanczos (the baseline,
same process), and PSNR / LPIPS-alex against bicubic and Lanczos on held-out renders (skipped without
``data/``): 64-px inputs degraded like generator output, and plainly Lanczos-downsampled.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def _ms(fn, items, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for x in items:
            fn(x)
        best = min(best, (time.perf_counter() - t) / len(items) * 1e3)
    return best


def main() -> None:
    import torch
    from PIL import Image

    import weights as registry
    from face2emoticon.train_upscale import evaluate, lanczos
    from face2emoticon.upscale import load_upscaler, upscale
    from landmarks.errors import WeightsError

    torch.set_num_threads(1)
    try:
        model = load_upscaler(registry.path_of("upscale-emoget-x4"))
    except WeightsError as e:
        print(f"skipped: {e}")
        return
    rng = np.random.default_rng(0)
    imgs = [np.asarray(Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize(
        (64, 64), Image.Resampling.BICUBIC)) for _ in range(20)]
    upscale(model, imgs[0])  # warm-up
    ms_up, ms_lz = _ms(lambda x: upscale(model, x), imgs), _ms(lanczos, imgs)
    params = sum(p.numel() for p in model.parameters())
    print(f"PIL Lanczos 64->256 (baseline)        {ms_lz:7.2f} ms/image")
    print(f"upscaler 64->256 ({params / 1e3:.0f}k params)       {ms_up:7.2f} ms/image  "
          f"({ms_up / ms_lz:5.1f}x baseline; target < 100 ms)")

    styles = Path(__file__).resolve().parent.parent / "data" / "styles"
    if not styles.is_dir():
        print("quality: skipped (no data/styles; run `make data`)")
        return
    from face2emoticon.recipes.upscaler import heldout_targets

    targets = heldout_targets(styles.parent, per_style=4)
    m = evaluate(model, targets, lpips=True)
    print(f"quality on {m['n']} held-out renders (PSNR dB higher is better / LPIPS lower is better):")
    for kind in ("degraded", "plain"):
        r = m[kind]
        print(f"  {kind:9s} upscaler {r['psnr_upscaler']:6.2f} / {r['lpips_upscaler']:.4f}   "
              f"bicubic {r['psnr_bicubic']:6.2f} / {r['lpips_bicubic']:.4f}   "
              f"Lanczos {r['psnr_lanczos']:6.2f} / {r['lpips_lanczos']:.4f}")


if __name__ == "__main__":
    main()
