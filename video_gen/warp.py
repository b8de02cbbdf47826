"""Landmark-driven image warping: piecewise-affine over a Delaunay mesh, or a thin-plate spline.

``Warper(image, points)`` does all the per-still work once: the control points
(the 68 landmarks, a halo of points around the head that follows its rigid
motion, and fixed anchors on the image border), their Delaunay triangulation
(scipy), the pixel grids, and the appearance models the inner-mouth and eyelid
fills need. ``warp(new_points)`` then costs one triangle-id raster, one gather
and one ``cv2.remap``: about 1-3 ms for a 256 px frame on one core.

The warp is backward: each output pixel looks up where it came from, so there
are no holes. Triangles whose vertices do not move map to themselves, so pixels
outside the moving part of the face stay exactly where they were.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial import Delaunay

from video_gen.eyes import EyeLids
from video_gen.geometry import STABLE, FaceFrame, apply_affine, fit_similarity
from video_gen.mouth import MouthFill

log = logging.getLogger(__name__)

_SHIFT = 4  # sub-pixel bits for the triangle raster
_INNER_LOWER = (65, 66, 67)
_INNER_UPPER = (63, 62, 61)


@dataclass(frozen=True)
class WarpOptions:
    """How :class:`Warper` warps.

    ``method``: ``"affine"`` (piecewise-affine, default) or ``"tps"`` (thin-plate spline).
    ``border_per_side``: anchors per image side (corners included).
    ``halo``: add points around the head that follow its rigid motion, so the
    forehead and hair move with the face instead of stretching.
    ``mouth`` / ``eyes``: draw the inner mouth when the lips part, and clean
    eyelids when the eyes close.
    ``tps_step``: grid step (px) at which the spline is evaluated before upsampling.
    """

    method: str = "affine"
    border_per_side: int = 5
    halo: bool = True
    mouth: bool = True
    eyes: bool = True
    tps_step: int = 4

    def __post_init__(self):
        if self.method not in ("affine", "tps"):
            raise ValueError(f"unknown warp method {self.method!r}; use 'affine' or 'tps'")


def border_anchors(width: int, height: int, per_side: int) -> np.ndarray:
    """``[K,2]`` fixed points on the image border, corners included."""
    xs = np.linspace(0, width - 1, per_side)
    ys = np.linspace(0, height - 1, per_side)
    top = np.stack([xs, np.zeros_like(xs)], 1)
    bottom = np.stack([xs, np.full_like(xs, height - 1)], 1)
    left = np.stack([np.zeros_like(ys[1:-1]), ys[1:-1]], 1)
    right = np.stack([np.full_like(ys[1:-1], width - 1), ys[1:-1]], 1)
    return np.concatenate([top, bottom, left, right]).astype(np.float64)


def halo_points(points: np.ndarray) -> np.ndarray:
    """``[K,2]`` points around the head (forehead, temples, below the jaw) in pixels."""
    frame = FaceFrame.from_points(points)
    u = frame.to_unit(points)
    centre = u[list(range(17)) + list(range(17, 27))].mean(0)
    jaw = centre + 1.3 * (u[0:17:2] - centre)
    brows = u[17:27:2].copy()
    forehead = np.stack([1.2 * brows[:, 0], brows[:, 1] - 0.85], 1)
    crown = np.stack([1.3 * u[[17, 26], 0], u[[17, 26], 1] - 0.35], 1)
    return frame.to_pixels(np.concatenate([jaw, forehead, crown]))


class Warper:
    """Warp one still to new landmark positions.

    Args:
        image: ``uint8 [H,W,C]`` (C = 1, 3 or 4; an alpha channel is warped like colour).
        points: ``float [68,2]`` landmarks of ``image`` in pixels (iBUG order).
        options: :class:`WarpOptions`.

    ``warp(new_points [68,2]) -> uint8 [H,W,C]``. ``warp(points)`` returns ``image``
    unchanged (bit-exact).
    """

    def __init__(self, image: np.ndarray, points: np.ndarray, *, options: WarpOptions | None = None):
        image = np.ascontiguousarray(image)
        if image.dtype != np.uint8 or image.ndim not in (2, 3):
            raise ValueError(f"image must be uint8 [H,W] or [H,W,C], got {image.dtype} {image.shape}")
        points = np.asarray(points, dtype=np.float64)
        if points.shape != (68, 2) or not np.isfinite(points).all():
            raise ValueError(f"points must be finite [68,2] pixels, got {points.shape}")
        self.options = options or WarpOptions()
        self.image = image
        self.points = points
        h, w = image.shape[:2]
        self.size = (w, h)
        border = border_anchors(w, h, max(2, self.options.border_per_side))
        halo = halo_points(points) if self.options.halo else np.zeros((0, 2))
        inset = 1.0
        halo = halo[(halo[:, 0] > inset) & (halo[:, 0] < w - 1 - inset) & (halo[:, 1] > inset) & (halo[:, 1] < h - 1 - inset)]
        self.halo = halo
        self.src = np.concatenate([points, halo, border])  # [N,2]
        self._n_face, self._n_halo = 68, len(halo)
        topo = self.src.copy()
        for lo, up in zip(_INNER_LOWER, _INNER_UPPER):  # keep a closed mouth's two lips separate vertices
            if np.hypot(*(topo[lo] - topo[up])) < 0.5:
                topo[lo, 1] = topo[up, 1] + 0.5
        tri = Delaunay(topo)
        self.triangles = tri.simplices.astype(np.int32)  # [T,3]
        if len(tri.coplanar):
            log.debug("%d coincident control points left out of the mesh", len(tri.coplanar))
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        self._xs, self._ys = xs, ys
        self._idmap = np.zeros((h, w), np.uint16)
        self.mouth = MouthFill(image, points) if self.options.mouth else None
        self.eyes = EyeLids(image, points) if self.options.eyes else None

    # -- control points ---------------------------------------------------------------------------------
    def control_points(self, new_points: np.ndarray) -> np.ndarray:
        """``[N,2]`` destination control points for landmarks ``new_points [68,2]``."""
        new_points = np.asarray(new_points, dtype=np.float64)
        if new_points.shape != (68, 2) or not np.isfinite(new_points).all():
            raise ValueError(f"new_points must be finite [68,2] pixels, got {new_points.shape}")
        dst = self.src.copy()
        dst[:68] = new_points
        if self._n_halo:
            m = fit_similarity(self.points[STABLE], new_points[STABLE])
            dst[68:68 + self._n_halo] = apply_affine(m, self.halo)
        return dst

    # -- maps ---------------------------------------------------------------------------------------------
    def maps(self, new_points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Backward maps ``(map_x, map_y)``, each ``float32 [H,W]``: output pixel → source position."""
        dst = self.control_points(new_points)
        if self.options.method == "tps":
            return self._tps_maps(dst)
        return self._affine_maps(dst)

    def _affine_maps(self, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        tris = self.triangles
        moved = np.abs(dst - self.src).max(1) > 1e-9
        tri_moved = moved[tris].any(1)
        if not tri_moved.any():
            return self._xs, self._ys
        active = np.nonzero(tri_moved)[0]
        d = dst[tris[active]]  # [A,3,2]
        s = self.src[tris[active]]
        dm = np.concatenate([d, np.ones((len(active), 3, 1))], 2)  # rows: (x, y, 1)
        det = np.linalg.det(dm)
        ok = np.abs(det) > 1e-9
        coef = np.zeros((len(active), 3, 2))
        coef[ok] = np.linalg.solve(dm[ok], s[ok])  # dst (x,y,1) @ coef = src
        coef[~ok, 2] = (s[~ok] - d[~ok]).mean(1)
        coef[~ok, 0, 0] = coef[~ok, 1, 1] = 1.0
        # Raster the moving triangles' ids (0 = not moving → identity) inside their bounding box.
        lo = np.floor(d.reshape(-1, 2).min(0)).astype(int)
        hi = np.ceil(d.reshape(-1, 2).max(0)).astype(int) + 1
        w, h = self.size
        x0, y0 = max(lo[0], 0), max(lo[1], 0)
        x1, y1 = min(hi[0], w), min(hi[1], h)
        idmap = self._idmap[y0:y1, x0:x1]
        idmap[:] = 0
        fixed = np.round((d - [x0, y0]) * (1 << _SHIFT)).astype(np.int32)
        for k in range(len(active)):
            cv2.fillConvexPoly(idmap, fixed[k], k + 1, lineType=cv2.LINE_8, shift=_SHIFT)
        identity = np.array([[[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]])
        table = np.concatenate([identity, coef]).astype(np.float32)  # [A+1,3,2]; entry 0 = identity
        c = table[idmap]  # [h,w,3,2]
        xs, ys = self._xs[y0:y1, x0:x1], self._ys[y0:y1, x0:x1]
        map_x, map_y = self._xs.copy(), self._ys.copy()
        map_x[y0:y1, x0:x1] = xs * c[..., 0, 0] + ys * c[..., 1, 0] + c[..., 2, 0]
        map_y[y0:y1, x0:x1] = xs * c[..., 0, 1] + ys * c[..., 1, 1] + c[..., 2, 1]
        return map_x, map_y

    def _tps_maps(self, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        keep = np.ones(len(dst), bool)
        keep[list(_INNER_LOWER)] = np.hypot(*(dst[list(_INNER_LOWER)] - dst[list(_INNER_UPPER)]).T) > 0.5
        d, s = dst[keep], self.src[keep]
        if np.abs(d - s).max() < 1e-9:
            return self._xs, self._ys
        params = tps_fit(d, s)
        w, h = self.size
        step = max(1, self.options.tps_step)
        gx = np.arange(0, w + step, step, dtype=np.float64)
        gy = np.arange(0, h + step, step, dtype=np.float64)
        grid = np.stack(np.meshgrid(gx, gy), -1).reshape(-1, 2)
        val = tps_eval(params, d, grid).reshape(len(gy), len(gx), 2).astype(np.float32)
        # Bilinear upsampling of the node values: pixel x sits at grid coordinate x / step.
        big = cv2.remap(val, self._xs / step, self._ys / step, interpolation=cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REPLICATE)
        return np.ascontiguousarray(big[..., 0]), np.ascontiguousarray(big[..., 1])

    # -- warp -----------------------------------------------------------------------------------------------
    def warp(self, new_points: np.ndarray) -> np.ndarray:
        """The still with its landmarks moved to ``new_points [68,2]`` pixels → ``uint8`` like ``image``."""
        new_points = np.asarray(new_points, dtype=np.float64)
        map_x, map_y = self.maps(new_points)
        if map_x is self._xs:
            return self.image.copy()
        out = cv2.remap(self.image, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if out.ndim == 2 and self.image.ndim == 3:
            out = out[..., None]
        if self.eyes is not None:
            out = self.eyes.apply(out, new_points, head=self._head(new_points))
        if self.mouth is not None:
            out = self.mouth.apply(out, new_points)
        return out

    def _head(self, new_points: np.ndarray) -> np.ndarray:
        return fit_similarity(self.points[STABLE], new_points[STABLE])


def tps_fit(src: np.ndarray, dst: np.ndarray, *, reg: float = 1e-6) -> np.ndarray:
    """Thin-plate spline taking ``src [N,2]`` to ``dst [N,2]``; returns ``[N+3,2]`` (weights, then affine)."""
    n = len(src)
    k = _tps_kernel(src, src) + reg * np.eye(n)
    p = np.hstack([np.ones((n, 1)), src])
    a = np.zeros((n + 3, n + 3))
    a[:n, :n], a[:n, n:], a[n:, :n] = k, p, p.T
    b = np.zeros((n + 3, 2))
    b[:n] = dst
    try:
        return np.linalg.solve(a, b)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(a, b, rcond=None)[0]


def tps_eval(params: np.ndarray, ctrl: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Evaluate a :func:`tps_fit` spline at ``pts [M,2]`` → ``[M,2]``."""
    n = len(ctrl)
    return _tps_kernel(pts, ctrl) @ params[:n] + params[n] + pts @ params[n + 1:]


def _tps_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    r2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    r2 = np.maximum(r2, 1e-12)
    return 0.5 * r2 * np.log(r2)
