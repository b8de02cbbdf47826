"""Eyelids: closing eyes without smearing.

When the upper lid points move down, a plain warp stretches the lashes and the
crease above the eye into a dark band over where the eye was. :class:`EyeLids`
covers that band with the lid's own skin tone (sampled between brow and eye in
the still), shaded towards the lash line, and draws the closed lash line along
the lid, faded in with the eye's closure.
"""
from __future__ import annotations

import cv2
import numpy as np

from video_gen.geometry import apply_affine
from video_gen.raster import bbox, blend, polygon_mask, smoothstep

# (corner, upper, upper, corner, lower, lower, brow points above) per eye, iBUG indices.
EYES = {
    "right": {"upper": [36, 37, 38, 39], "lower": [39, 40, 41, 36], "brow": [19, 20]},
    "left": {"upper": [42, 43, 44, 45], "lower": [45, 46, 47, 42], "brow": [23, 24]},
}


def eye_opening(points: np.ndarray, eye: str) -> float:
    """Mean upper-to-lower lid distance (px) of one eye (``"right"`` = iBUG 36-41, ``"left"`` = 42-47)."""
    p = np.asarray(points, dtype=np.float64)
    up, lo = EYES[eye]["upper"][1:3], EYES[eye]["lower"][1:3][::-1]
    return float(np.mean([np.hypot(*(p[a] - p[b])) for a, b in zip(up, lo)]))


class EyeLids:
    """Paints closing eyelids on warped frames of one still (``image uint8 [H,W,C]``, ``points [68,2]``)."""

    def __init__(self, image: np.ndarray, points: np.ndarray):
        p = np.asarray(points, dtype=np.float64)
        self.points = p
        self.size = (image.shape[1], image.shape[0])
        self.open0 = {e: max(eye_opening(p, e), 1e-3) for e in EYES}
        self.skin = {e: self._skin(image, p, e) for e in EYES}

    def _skin(self, image: np.ndarray, p: np.ndarray, eye: str) -> np.ndarray:
        if image.ndim != 3 or image.shape[2] < 3:
            return np.array([200.0, 160, 140])
        idx = EYES[eye]
        width = np.hypot(*(p[idx["upper"][0]] - p[idx["upper"][-1]]))
        samples = []
        for u, b in zip(idx["upper"][1:3], idx["brow"]):
            c = 0.55 * p[u] + 0.45 * p[b]  # the lid skin between eye and brow
            r = max(1.0, 0.12 * width)
            box = bbox(np.array([c - r, c + r]), self.size, pad=0)
            if box is not None:
                x0, y0, x1, y1 = box
                samples.append(image[y0:y1, x0:x1, :3].reshape(-1, 3))
        if not samples:
            return np.array([200.0, 160, 140])
        return np.median(np.concatenate(samples).astype(np.float32), 0)

    def closure(self, points: np.ndarray, eye: str) -> float:
        """0 (as open as in the still) .. 1 (shut)."""
        return float(np.clip(1 - eye_opening(points, eye) / self.open0[eye], 0, 1))

    def apply(self, frame: np.ndarray, points: np.ndarray, *, head: np.ndarray | None = None) -> np.ndarray:
        """Paint lids on ``frame [H,W,C]`` for landmarks ``points [68,2]``.

        ``head``: ``[2,3]`` similarity from the still's landmarks to these (rigid head motion), so the lid
        covers where the open eye would be now.
        """
        p = np.asarray(points, dtype=np.float64)
        head = np.hstack([np.eye(2), np.zeros((2, 1))]) if head is None else head
        out = frame
        for eye, idx in EYES.items():
            a = float(smoothstep(0.35, 0.85, self.closure(p, eye)))
            if a <= 0:
                continue
            upper_then = apply_affine(head, self.points[idx["upper"]])
            upper_now = p[idx["upper"]]
            width = np.hypot(*(upper_now[-1] - upper_now[0]))
            lift = np.array([0.0, -0.25 * self.open0[eye] * abs(head[0, 0] + 1j * head[1, 0])])
            top = _smooth_curve(upper_then + lift * np.array([[0.3], [1], [1], [0.3]]))
            bottom = _smooth_curve(upper_now)
            poly = np.concatenate([top, bottom[::-1]])
            box = bbox(poly, self.size, pad=3)
            if box is None:
                continue
            x0, y0, x1, y1 = box
            mask = polygon_mask(poly, box, feather=max(0.6, 0.04 * width)) * a
            ys = np.arange(y0, y1, dtype=np.float64)[:, None]
            span = max(bottom[:, 1].max() - top[:, 1].min(), 1.0)
            depth = np.clip((ys - top[:, 1].min()) / span, 0, 1)
            colour = self.skin[eye][None, None, :] * (1.0 - 0.12 * depth)[..., None] * np.ones((1, x1 - x0, 1))
            if out is frame:
                out = frame.copy()
            out[y0:y1, x0:x1] = blend(out[y0:y1, x0:x1], colour, mask)
            # The lash line of the closed lid.
            lash = np.zeros((y1 - y0, x1 - x0), np.float32)
            pts = np.round((bottom - [x0, y0]) * 16).astype(np.int32)
            thick = max(1, round(0.06 * width))
            cv2.polylines(lash, [pts], False, 1.0, thickness=thick, lineType=cv2.LINE_AA, shift=4)
            lash_colour = self.skin[eye] * 0.3
            out[y0:y1, x0:x1] = blend(out[y0:y1, x0:x1], np.broadcast_to(lash_colour, (*lash.shape, 3)), lash * a)
        return out


def _smooth_curve(pts: np.ndarray, rounds: int = 2) -> np.ndarray:
    """Chaikin corner cutting of an open polyline ``[K,2]`` (end points kept) → a smoother ``[M,2]``."""
    pts = np.asarray(pts, dtype=np.float64)
    for _ in range(rounds):
        q = 0.75 * pts[:-1] + 0.25 * pts[1:]
        r = 0.25 * pts[:-1] + 0.75 * pts[1:]
        mid = np.stack([q, r], 1).reshape(-1, 2)
        pts = np.concatenate([pts[:1], mid, pts[-1:]])
    return pts
