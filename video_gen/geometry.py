"""Face frames: the scale and orientation a face's own landmarks define.

Every displacement in ``video_gen`` is stored in a face-normalised frame: the
origin is the midpoint between the two eye centres, the x axis runs from the
subject's right eye (iBUG 36-41, image left) to the left eye (42-47), y points
down (image convention) and one unit is the distance between the eye centres.
:class:`FaceFrame` converts between that frame and pixels, so an expression moves
a small face a little and a large, tilted face a lot, along its own axes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RIGHT_EYE = slice(36, 42)
LEFT_EYE = slice(42, 48)
# Points that an expression barely moves: eye corners, nose bridge and base.
STABLE = np.array([27, 28, 29, 30, 31, 33, 35, 36, 39, 42, 45])


@dataclass(frozen=True)
class FaceFrame:
    """A similarity frame: ``px = origin + scale * R @ unit``.

    ``origin [2]`` pixels, ``scale`` pixels per unit (eye-centre distance),
    ``angle`` radians (the eye line's tilt, image coordinates).
    """

    origin: np.ndarray
    scale: float
    angle: float

    @classmethod
    def from_points(cls, points: np.ndarray) -> FaceFrame:
        """Frame of one face from its ``[68,2]`` landmarks."""
        p = np.asarray(points, dtype=np.float64)
        if p.shape != (68, 2):
            raise ValueError(f"points must be [68,2], got {p.shape}")
        r, l_ = p[RIGHT_EYE].mean(0), p[LEFT_EYE].mean(0)
        v = l_ - r
        scale = float(np.hypot(*v))
        if scale < 1e-6:
            raise ValueError("degenerate landmarks: both eye centres coincide")
        return cls(origin=(r + l_) / 2, scale=scale, angle=float(np.arctan2(v[1], v[0])))

    @property
    def rotation(self) -> np.ndarray:
        c, s = np.cos(self.angle), np.sin(self.angle)
        return np.array([[c, -s], [s, c]])

    def to_pixels(self, unit: np.ndarray) -> np.ndarray:
        """``[...,2]`` face units → pixels."""
        return np.asarray(unit) @ (self.scale * self.rotation).T + self.origin

    def vectors_to_pixels(self, d: np.ndarray) -> np.ndarray:
        """``[...,2]`` displacements in face units → pixel displacements (no translation)."""
        return np.asarray(d) @ (self.scale * self.rotation).T

    def to_unit(self, px: np.ndarray) -> np.ndarray:
        """``[...,2]`` pixels → face units."""
        return (np.asarray(px) - self.origin) @ self.rotation / self.scale

    def vectors_to_unit(self, d: np.ndarray) -> np.ndarray:
        return np.asarray(d) @ self.rotation / self.scale


def normalise(points: np.ndarray) -> np.ndarray:
    """``[...,68,2]`` pixels → the same shapes in each face's own unit frame."""
    p = np.asarray(points, dtype=np.float64)
    flat = p.reshape(-1, 68, 2)
    out = np.stack([FaceFrame.from_points(q).to_unit(q) for q in flat])
    return out.reshape(p.shape).astype(np.float32)


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity ``[2,3]`` taking ``src [N,2]`` onto ``dst [N,2]`` (Umeyama, no reflection)."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    cov = b.T @ a / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(u @ vt)) or 1.0
    s_mat = np.diag([1.0, d])
    rot = u @ s_mat @ vt
    var = (a**2).sum() / len(src)
    scale = (sig * np.diag(s_mat)).sum() / var if var > 0 else 1.0
    t = md - scale * rot @ ms
    return np.hstack([scale * rot, t[:, None]])


def apply_affine(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a ``[2,3]`` affine to ``[...,2]`` points."""
    return np.asarray(pts) @ m[:, :2].T + m[:, 2]
