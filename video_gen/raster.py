"""Small raster helpers shared by the mouth and eyelid fills."""
from __future__ import annotations

import cv2
import numpy as np

_SHIFT = 4


def bbox(points: np.ndarray, size: tuple[int, int], *, pad: int = 2) -> tuple[int, int, int, int] | None:
    """Integer ``(x0, y0, x1, y1)`` around ``points [N,2]`` clipped to ``size=(w, h)``; None if empty."""
    w, h = size
    lo = np.floor(points.min(0)).astype(int) - pad
    hi = np.ceil(points.max(0)).astype(int) + pad + 1
    x0, y0, x1, y1 = max(lo[0], 0), max(lo[1], 0), min(hi[0], w), min(hi[1], h)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def polygon_mask(points: np.ndarray, box: tuple[int, int, int, int], *, feather: float = 0.0) -> np.ndarray:
    """Anti-aliased coverage ``float32 [y1-y0, x1-x0]`` in [0,1] of polygon ``points [N,2]`` (pixels) inside ``box``."""
    x0, y0, x1, y1 = box
    mask = np.zeros((y1 - y0, x1 - x0), np.float32)
    pts = np.round((np.asarray(points) - [x0, y0]) * (1 << _SHIFT)).astype(np.int32)
    cv2.fillPoly(mask, [pts], 1.0, lineType=cv2.LINE_AA, shift=_SHIFT)
    if feather > 0:
        k = int(2 * np.ceil(2 * feather) + 1)
        mask = cv2.GaussianBlur(mask, (k, k), feather)
    return mask


def blend(region: np.ndarray, colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``region [h,w,C] uint8`` over which ``colour [h,w,3] float`` is laid with ``alpha [h,w]``.

    An alpha channel (C = 4) becomes opaque where the colour is laid.
    """
    out = region.astype(np.float32)
    a = alpha[..., None]
    out[..., :3] = out[..., :3] * (1 - a) + colour * a
    if region.shape[-1] == 4:
        out[..., 3] = np.maximum(out[..., 3], 255 * alpha)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def smoothstep(lo: float, hi: float, x):
    t = np.clip((np.asarray(x, dtype=np.float64) - lo) / max(hi - lo, 1e-9), 0, 1)
    return t * t * (3 - 2 * t)
