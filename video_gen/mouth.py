"""Inner-mouth fill: when the lips part further than in the still, paint a shaded mouth interior.

Warping alone stretches the thin strip of lip between the inner contours into
the opening, which reads as a pink smear. :class:`MouthFill` paints the inner-lip
polygon (iBUG 60-67) instead: a dark interior, darker towards the throat, with
an optional band of upper teeth, faded in as the gap grows past the still's.
"""
from __future__ import annotations

import numpy as np

from video_gen.raster import bbox, blend, polygon_mask, smoothstep

INNER = list(range(60, 68))
_PAIRS = ((61, 67), (62, 66), (63, 65))
_UPPER = [60, 61, 62, 63, 64]
_LOWER = [60, 67, 66, 65, 64]


def lip_gap(points: np.ndarray) -> float:
    """Mean distance (px) between the upper and lower inner lip of ``points [68,2]``."""
    p = np.asarray(points, dtype=np.float64)
    return float(np.mean([np.hypot(*(p[a] - p[b])) for a, b in _PAIRS]))


def mouth_width(points: np.ndarray) -> float:
    p = np.asarray(points, dtype=np.float64)
    return float(np.hypot(*(p[54] - p[48])))


class MouthFill:
    """Paints the inner mouth of warped frames of one still.

    Args:
        image: the still, ``uint8 [H,W,C]``; its lip colour tints the interior.
        points: the still's ``[68,2]`` landmarks.
        teeth: draw a band of upper teeth.
    """

    def __init__(self, image: np.ndarray, points: np.ndarray, *, teeth: bool = True):
        self.gap0 = lip_gap(points)
        self.size = (image.shape[1], image.shape[0])
        self.teeth = teeth
        lips = np.asarray(points, dtype=np.float64)[48:60]
        box = bbox(lips, self.size, pad=0)
        if box is not None and image.ndim == 3 and image.shape[2] >= 3:
            x0, y0, x1, y1 = box
            m = polygon_mask(lips, box) > 0.5
            lip = image[y0:y1, x0:x1, :3][m].astype(np.float32)
            lip_colour = np.median(lip, 0) if len(lip) else np.array([150.0, 70, 70])
        else:
            lip_colour = np.array([150.0, 70, 70])
        # A dark, slightly warm cavity: the lip hue at a fifth of its brightness.
        self.cavity = np.clip(0.22 * lip_colour + [18, 4, 6], 0, 255)
        self.teeth_colour = np.array([236.0, 232, 222])

    def strength(self, points: np.ndarray) -> float:
        """0..1: how much of an open mouth to paint for landmarks ``points [68,2]``."""
        w = max(mouth_width(points), 1.0)
        opened = lip_gap(points) - self.gap0
        return float(smoothstep(0.04 * w, 0.12 * w, opened))

    def apply(self, frame: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Paint the mouth of ``frame uint8 [H,W,C]`` whose landmarks are ``points [68,2]``; returns a new array
        (or ``frame`` itself when the lips are not parted)."""
        a = self.strength(points)
        if a <= 0:
            return frame
        p = np.asarray(points, dtype=np.float64)
        poly = p[INNER]
        box = bbox(poly, self.size)
        if box is None:
            return frame
        x0, y0, x1, y1 = box
        mask = polygon_mask(poly, box) * a
        # Position inside the opening: t = 0 at the upper lip, 1 at the lower lip, u across.
        xs = np.arange(x0, x1, dtype=np.float64)
        up, lo = p[_UPPER], p[_LOWER]
        y_up = np.interp(xs, *_sorted(up))
        y_lo = np.interp(xs, *_sorted(lo))
        ys = np.arange(y0, y1, dtype=np.float64)[:, None]
        height = np.maximum(y_lo - y_up, 1e-3)[None, :]
        t = np.clip((ys - y_up[None, :]) / height, 0, 1)
        left, right = p[[60, 48]].min(0)[0], p[[64, 54]].max(0)[0]
        u = np.clip((xs - left) / max(right - left, 1e-3), 0, 1)[None, :]
        shade = 0.55 + 0.45 * (np.abs(2 * t - 1) ** 1.5 + np.abs(2 * u - 1) ** 2) / 2
        colour = self.cavity[None, None, :] * shade[..., None]
        if self.teeth:
            gap = lip_gap(p)
            teeth_h = min(0.3, 0.12 * mouth_width(p) / max(gap, 1e-3))  # teeth band ≈ 12 % of mouth width
            edge = (1 - smoothstep(teeth_h - 0.08, teeth_h, t)) * (1 - np.abs(2 * u - 1) ** 4)
            tooth = self.teeth_colour[None, None, :] * (0.8 + 0.2 * smoothstep(0.0, teeth_h, t))[..., None]
            colour = colour * (1 - edge[..., None]) + tooth * edge[..., None]
        out = frame.copy()
        out[y0:y1, x0:x1] = blend(frame[y0:y1, x0:x1], colour, mask)
        return out


def _sorted(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(pts[:, 0])
    return pts[order, 0], pts[order, 1]
