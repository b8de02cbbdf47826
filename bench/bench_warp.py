"""Warp cost per 256 px frame on one core (process CPU time), after per-still setup.

Baseline in the same process: a plain ``cv2.remap`` of a precomputed map (the floor any
backward warp pays). Prints ms/frame for piecewise-affine (with and without the mouth and
eyelid fills), thin-plate spline, and the one-off setup.
"""
from __future__ import annotations

import time

import cv2
import numpy as np


def _face(size):
    from video_gen.geometry import FaceFrame
    from video_gen.prior import load_basis

    return FaceFrame(origin=np.array([size / 2, size * 0.4]), scale=size / 4, angle=0.0).to_pixels(
        load_basis().neutral.astype(np.float64))


def _cpu_ms(fn, items):
    t = time.process_time()
    for x in items:
        fn(x)
    return (time.process_time() - t) / len(items) * 1e3


def main() -> None:
    from video_gen.prior import sample_sequence
    from video_gen.warp import Warper, WarpOptions

    cv2.setNumThreads(1)
    size = 256
    rng = np.random.default_rng(0)
    img = cv2.resize(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), (size, size), interpolation=cv2.INTER_CUBIC)
    pts = _face(size)
    seq = [pts + 64 * d for name in ("happy", "surprised", "wink") for d in sample_sequence(name, frames=16, rng=1)]
    t = time.process_time()
    for _ in range(10):
        Warper(img, pts)
    setup = (time.process_time() - t) / 10 * 1e3
    w = Warper(img, pts)
    mx, my = w.maps(seq[8])
    base = _cpu_ms(lambda _: cv2.remap(img, mx, my, cv2.INTER_LINEAR), seq)
    aff = _cpu_ms(w.warp, seq)
    bare = Warper(img, pts, options=WarpOptions(mouth=False, eyes=False))
    aff_bare = _cpu_ms(bare.warp, seq)
    tps = _cpu_ms(Warper(img, pts, options=WarpOptions(method="tps")).warp, seq[:16])
    print(f"setup (triangulation, grids, fills)   {setup:7.2f} ms once per still")
    print(f"baseline cv2.remap only               {base:7.2f} ms/frame")
    print(f"piecewise-affine + mouth + eyelids    {aff:7.2f} ms/frame  ({aff / base:5.1f}x baseline; target <= 5 ms)")
    print(f"piecewise-affine, no fills            {aff_bare:7.2f} ms/frame  ({aff_bare / base:5.1f}x baseline)")
    print(f"thin-plate spline (grid step 4)       {tps:7.2f} ms/frame  ({tps / base:5.1f}x baseline)")


if __name__ == "__main__":
    main()
