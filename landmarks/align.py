"""FFHQ-style face alignment, its inverse, and pasting a processed crop back into the photo.

The crop follows the FFHQ dataset recipe (Karras et al., ``ffhq-dataset``
``recreate_aligned_images``): an oriented square built from the eye-to-eye and
eye-to-mouth vectors of the 68 landmarks. Where the square leaves the photo, the
photo is mirrored outward, blurred and faded toward its median colour with the
distance from the edge (as FFHQ does), so the crop has no hard borders.

Coordinates: pixel centres at integer positions (the OpenCV convention), x right, y down.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

log = logging.getLogger(__name__)

MIN_SIZE, MAX_SIZE = 64, 1024


@dataclass(frozen=True, eq=False)
class AlignTransform:
    """A similarity transform between an image and a square crop.

    Attributes:
        matrix: ``float64 [3,3]`` homogeneous map from source pixels to target pixels.
        source_size: ``(width, height)`` of the source image.
        target_size: ``(width, height)`` of the target image.
    """

    matrix: np.ndarray
    source_size: tuple[int, int]
    target_size: tuple[int, int]

    def __post_init__(self):
        m = np.asarray(self.matrix, np.float64)
        if m.shape != (3, 3):
            raise ValueError(f"matrix must be 3x3, got {m.shape}")
        object.__setattr__(self, "matrix", m)
        object.__setattr__(self, "source_size", tuple(int(v) for v in self.source_size))
        object.__setattr__(self, "target_size", tuple(int(v) for v in self.target_size))

    def inverse(self) -> AlignTransform:
        """The map back (target → source)."""
        return AlignTransform(np.linalg.inv(self.matrix), self.target_size, self.source_size)

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Map ``points [...,2]`` (x, y) source pixels → target pixels (float32)."""
        p = np.asarray(points, np.float64)
        out = p @ self.matrix[:2, :2].T + self.matrix[:2, 2]
        return out.astype(np.float32)

    def resized(self, size: int) -> AlignTransform:
        """The same transform for a square target of ``size`` pixels instead (a crop re-rendered at another size)."""
        old = self.target_size[0]
        k = size / old
        # pixel centres: target coordinate u maps to (u + 0.5) * k - 0.5
        scale = np.array([[k, 0, 0.5 * k - 0.5], [0, k, 0.5 * k - 0.5], [0, 0, 1]], np.float64)
        return AlignTransform(scale @ self.matrix, self.source_size, (size, size))

    @property
    def scale(self) -> float:
        """Target pixels per source pixel."""
        return float(np.sqrt(abs(np.linalg.det(self.matrix[:2, :2]))))


@dataclass(frozen=True, eq=False)
class Aligned:
    """An aligned face crop.

    Attributes:
        image: ``uint8 [size,size,3]`` RGB crop.
        points: ``float32 [68,2]`` landmarks in crop pixels.
        transform: original → crop :class:`AlignTransform` (``.inverse()`` maps back).
    """

    image: np.ndarray
    points: np.ndarray
    transform: AlignTransform


def ffhq_quad(points: np.ndarray) -> np.ndarray:
    """The FFHQ crop square for 68 landmarks: ``float64 [4,2]`` corners (top-left, bottom-left,
    bottom-right, top-right) in source pixels."""
    lm = np.asarray(points, np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"points must be [68,2] iBUG landmarks, got {lm.shape}")
    eye_left = lm[36:42].mean(0)  # image-left eye (the subject's right)
    eye_right = lm[42:48].mean(0)
    eye_avg = (eye_left + eye_right) * 0.5
    eye_to_eye = eye_right - eye_left
    mouth_avg = (lm[48] + lm[54]) * 0.5
    eye_to_mouth = mouth_avg - eye_avg
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    norm = np.hypot(*x)
    if not np.isfinite(norm) or norm < 1e-6:
        raise ValueError("degenerate landmarks: the eyes and mouth coincide")
    x /= norm
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def align_transform(points: np.ndarray, image_size: tuple[int, int], *, size: int = 256) -> AlignTransform:
    """The original → crop transform for ``points [68,2]`` in an image of ``(width, height)``."""
    quad = ffhq_quad(points)
    # continuous corners of the crop: pixel centres 0..size-1, so the square spans -0.5..size-0.5
    lo, hi = -0.5, size - 0.5
    dst = np.array([[lo, lo], [lo, hi], [hi, hi], [hi, lo]], np.float64)
    return AlignTransform(_similarity(quad, dst), image_size, (size, size))


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity ``[3,3]`` mapping ``src [N,2]`` onto ``dst [N,2]``."""
    a = np.zeros((2 * len(src), 4))
    a[0::2] = np.c_[src[:, 0], -src[:, 1], np.ones(len(src)), np.zeros(len(src))]
    a[1::2] = np.c_[src[:, 1], src[:, 0], np.zeros(len(src)), np.ones(len(src))]
    p, *_ = np.linalg.lstsq(a, dst.reshape(-1), rcond=None)
    sa, sb, tx, ty = p
    return np.array([[sa, -sb, tx], [sb, sa, ty], [0, 0, 1]], np.float64)


def align(image: np.ndarray, points: np.ndarray, *, size: int = 256, pad_blur: bool = True) -> Aligned:
    """Cut the FFHQ-aligned square crop of a face.

    Args:
        image: ``uint8 [H,W,3]`` RGB photo.
        points: ``[68,2]`` iBUG landmarks in ``image`` pixels (e.g. ``detect(image).points``).
        size: crop side in pixels, 64-1024.
        pad_blur: fill the part of the square outside the photo with a mirrored, blurred
            copy fading to the median colour (FFHQ); ``False`` mirrors only.

    Returns:
        :class:`Aligned` with the crop, the landmarks in crop pixels and the transform.
    """
    if not MIN_SIZE <= int(size) <= MAX_SIZE:
        raise ValueError(f"size must be between {MIN_SIZE} and {MAX_SIZE}, got {size}")
    size = int(size)
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"image must be uint8 [H,W,3], got {img.dtype} {img.shape}")
    h, w = img.shape[:2]
    tf = align_transform(points, (w, h), size=size)
    inv = tf.inverse()
    corners = inv.apply(np.array([[-0.5, -0.5], [-0.5, size - 0.5], [size - 0.5, size - 0.5], [size - 0.5, -0.5]]))
    qsize = float(np.linalg.norm(corners[1] - corners[0]))

    # Work on the square's bounding region only (plus a margin for the blur and interpolation).
    margin = int(np.ceil(qsize * 0.1)) + 2
    x0 = int(np.floor(corners[:, 0].min())) - margin
    y0 = int(np.floor(corners[:, 1].min())) - margin
    x1 = int(np.ceil(corners[:, 0].max())) + margin + 1
    y1 = int(np.ceil(corners[:, 1].max())) + margin + 1
    region = _region_with_padding(img, x0, y0, x1, y1, qsize=qsize, blur=pad_blur)

    # Shrink first when the crop is much smaller than the face (anti-aliasing, as FFHQ does).
    shift = np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1]], np.float64)  # region px → original px
    shrink = int(np.floor(1.0 / max(tf.scale, 1e-9) * 0.5))
    m = tf.matrix @ shift
    if shrink > 1:
        rh, rw = region.shape[:2]
        new = (max(1, round(rw / shrink)), max(1, round(rh / shrink)))
        kx, ky = rw / new[0], rh / new[1]
        region = cv2.resize(region, new, interpolation=cv2.INTER_AREA)
        up = np.array([[kx, 0, 0.5 * kx - 0.5], [0, ky, 0.5 * ky - 0.5], [0, 0, 1]], np.float64)
        m = m @ up  # shrunk region px → region px → crop px
    crop = cv2.warpAffine(region, m[:2], (size, size), flags=cv2.INTER_CUBIC if tf.scale > 1 else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT_101)
    return Aligned(image=np.ascontiguousarray(crop), points=tf.apply(points), transform=tf)


def _region_with_padding(img: np.ndarray, x0: int, y0: int, x1: int, y1: int, *, qsize: float,
                         blur: bool) -> np.ndarray:
    """``img[y0:y1, x0:x1]`` where out-of-image parts are mirrored (and blurred, faded: FFHQ)."""
    h, w = img.shape[:2]
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if cx0 >= cx1 or cy0 >= cy1:
        raise ValueError("the face lies entirely outside the image; check the landmarks")
    pad = (cx0 - x0, cy0 - y0, x1 - cx1, y1 - cy1)  # left, top, right, bottom
    inner = img[cy0:cy1, cx0:cx1]
    if max(pad) == 0:
        return np.ascontiguousarray(inner)
    out = np.pad(inner.astype(np.float32), ((pad[1], pad[3]), (pad[0], pad[2]), (0, 0)), mode="reflect")
    if blur:
        rh, rw = out.shape[:2]
        xx = np.arange(rw, dtype=np.float32)[None, :]
        yy = np.arange(rh, dtype=np.float32)[:, None]
        # per side: pixels beyond the photo's edge (negative inside the photo)
        sides = [(pad[0] - xx, pad[0]), (xx - (rw - 1 - pad[2]), pad[2]),
                 (pad[1] - yy, pad[1]), (yy - (rh - 1 - pad[3]), pad[3])]
        beyond = np.full((rh, rw), -np.inf, np.float32)
        fade = np.zeros((rh, rw), np.float32)  # 0 at the edge → 1 at the far end of the padding
        for d, p in sides:
            if p > 0:
                beyond = np.maximum(beyond, d)
                fade = np.maximum(fade, np.clip(d / p, 0.0, 1.0))
        sigma = max(qsize * 0.02, 0.5)
        # the blur fades in over 2 sigma inside the photo's edge, so the seam itself is soft
        blur_w = np.clip(1.0 + beyond / (2.0 * sigma), 0.0, 1.0)[..., None]
        blurred = cv2.GaussianBlur(out, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT_101)
        out += (blurred - out) * blur_w
        out += (np.median(inner.reshape(-1, 3), axis=0).astype(np.float32) - out) * fade[..., None]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def feather_mask(size: int, *, feather: float = 0.12) -> np.ndarray:
    """``float32 [size,size]`` in ``[0,1]``: 1 inside, a smooth ramp over ``feather * size`` at the edges,
    with rounded corners."""
    ramp = max(feather * size, 1.0)
    c = (size - 1) / 2.0
    u = np.abs(np.arange(size, dtype=np.float32) - c)
    edge = c + 0.5  # distance from centre to the crop's outer edge
    inner = edge - ramp
    dx = np.clip(u[None, :] - inner, 0, None)
    dy = np.clip(u[:, None] - inner, 0, None)
    t = np.clip(1.0 - np.sqrt(dx * dx + dy * dy) / ramp, 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)  # smoothstep


def paste_back(crop: np.ndarray, original: np.ndarray, transform: AlignTransform, *, mask: np.ndarray | None = None,
               feather: float = 0.12) -> np.ndarray:
    """Put a (processed) aligned crop back into the photo it came from.

    Args:
        crop: ``uint8 [S,S,3]`` RGB, or ``[S,S,4]`` RGBA whose alpha multiplies the mask.
            ``S`` may differ from the size the transform was made for (the crop is
            rescaled to match).
        original: ``uint8 [H,W,3]`` RGB, the photo ``transform`` was computed on.
        transform: the original → crop transform (``Aligned.transform``).
        mask: optional ``float [S,S]`` in ``[0,1]``: where the crop replaces the photo.
            Default: the whole square with edges feathered over ``feather * S`` pixels.
        feather: width of the default mask's soft edge as a fraction of ``S``.

    Returns:
        ``uint8 [H,W,3]``: the photo with the crop blended in (same size as ``original``).
    """
    crop = np.asarray(crop)
    orig = np.asarray(original)
    if crop.ndim != 3 or crop.shape[0] != crop.shape[1] or crop.shape[2] not in (3, 4):
        raise ValueError(f"crop must be [S,S,3] or [S,S,4], got {crop.shape}")
    if orig.ndim != 3 or orig.shape[2] != 3:
        raise ValueError(f"original must be [H,W,3], got {orig.shape}")
    h, w = orig.shape[:2]
    if (w, h) != transform.source_size:
        raise ValueError(f"transform was made for a {transform.source_size[0]}x{transform.source_size[1]} image, "
                         f"original is {w}x{h}")
    s = crop.shape[0]
    tf = transform if transform.target_size == (s, s) else transform.resized(s)
    alpha = feather_mask(s, feather=feather) if mask is None else np.clip(np.asarray(mask, np.float32), 0, 1)
    if alpha.shape != (s, s):
        raise ValueError(f"mask must be [{s},{s}], got {alpha.shape}")
    if crop.shape[2] == 4:
        alpha = alpha * (crop[..., 3].astype(np.float32) / 255.0)
    rgb = crop[..., :3]

    # Only the bounding box of the crop's footprint in the photo is touched.
    back = tf.inverse()
    corners = back.apply(np.array([[-0.5, -0.5], [-0.5, s - 0.5], [s - 0.5, s - 0.5], [s - 0.5, -0.5]]))
    x0 = max(int(np.floor(corners[:, 0].min())) - 1, 0)
    y0 = max(int(np.floor(corners[:, 1].min())) - 1, 0)
    x1 = min(int(np.ceil(corners[:, 0].max())) + 2, w)
    y1 = min(int(np.ceil(corners[:, 1].max())) + 2, h)
    out = orig.copy()
    if x0 >= x1 or y0 >= y1:
        return out
    m = (np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], np.float64) @ back.matrix)[:2]
    size = (x1 - x0, y1 - y0)
    flags = cv2.INTER_LINEAR if tf.scale >= 1 else cv2.INTER_CUBIC
    warped = cv2.warpAffine(rgb, m, size, flags=flags, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    a = cv2.warpAffine(alpha, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)[..., None]
    roi = out[y0:y1, x0:x1].astype(np.float32)
    out[y0:y1, x0:x1] = np.clip(roi + (warped - roi) * a + 0.5, 0, 255).astype(np.uint8)
    return out
