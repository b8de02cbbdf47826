"""Transparent backgrounds: an alpha matte of the face (or person) against its background.

Stylised stills sit on one flat background colour (the vector art's and the generator's ``f2f2f2``):
for them :func:`alpha_matte` keys out that colour where it is connected to the image border, which
keeps everything drawn, also parts of the drawing in a similar colour that the background does not reach.
Photos (a pasted-back result, a photo crop) go through MediaPipe's bundled selfie segmentation
(:func:`person_matte`; MediaPipe 0.10.21 ships its TFLite models inside the wheel, so nothing is
downloaded). Its raw mask is soft at the hair line; it is sharpened a little and feathered by a pixel
so the cut-out neither halos nor looks jagged.
"""
from __future__ import annotations

import functools
import logging
import threading

import cv2
import numpy as np

from landmarks.errors import EmogetError

log = logging.getLogger(__name__)
_lock = threading.Lock()


class MatteError(EmogetError):
    """The background could not be separated."""


@functools.lru_cache(maxsize=2)
def _segmenter(model_selection: int):
    try:
        import mediapipe as mp
    except ImportError as exc:  # pragma: no cover - pinned dependency
        raise MatteError("mediapipe is not installed; run `make setup` (transparent backgrounds need it)") from exc
    return mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=model_selection)


def alpha_matte(image: np.ndarray) -> np.ndarray:
    """Foreground opacity of ``image uint8 [H,W,3]`` RGB → ``float32 [H,W]`` in [0,1], or of a clip
    ``uint8 [T,H,W,3]`` → ``float32 [T,H,W]``: the flat background keyed out when the (first) image has one
    (:func:`flat_background`), else the person found by :func:`person_matte`. A clip is matted one way
    throughout, with the background colour and tolerance of its first frame, so the cut-out does not flicker."""
    image = np.asarray(image)
    frames = image if image.ndim == 4 else image[None]
    first = _rgb(frames[0])
    colour = flat_background(first)
    if colour is None:
        out = np.stack([person_matte(f) for f in frames])
    else:
        tolerance = background_tolerance(first, colour)
        out = np.stack([key_matte(_rgb(f), colour, tolerance=tolerance) for f in frames])
    return out if image.ndim == 4 else out[0]


def _rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] < 3:
        raise MatteError(f"a matte needs a uint8 [H,W,3] RGB image, got {image.dtype} {image.shape}")
    return np.ascontiguousarray(image[..., :3])


FLAT_TOLERANCE = 12  # per channel: how far a border pixel may stray from a flat background's colour


def _border(image: np.ndarray) -> np.ndarray:
    """The image's outermost pixels, ``int16 [N,C]``."""
    return np.concatenate([image[0], image[-1], image[1:-1, 0], image[1:-1, -1]]).astype(np.int16)


def _feather(alpha: np.ndarray, sigma: float) -> np.ndarray:
    """``alpha`` softened by a Gaussian of ``sigma`` px (none for 0)."""
    if sigma <= 0:
        return alpha
    k = int(2 * np.ceil(2 * sigma) + 1)
    return cv2.GaussianBlur(alpha, (k, k), sigma)


def flat_background(image: np.ndarray, *, tolerance: int = FLAT_TOLERANCE, coverage: float = 0.7) -> np.ndarray | None:
    """The background colour ``uint8 [3]`` when at least ``coverage`` of the border pixels lie within
    ``tolerance`` (per channel) of their median colour; None for a photo-like, busy border."""
    border = _border(image)
    colour = np.median(border, axis=0)
    near = np.abs(border - colour).max(axis=1) <= tolerance
    return colour.astype(np.uint8) if near.mean() >= coverage else None


def background_tolerance(image: np.ndarray, colour) -> int:
    """How far (per channel) a background pixel strays from ``colour``, from the border's own spread: 4 for
    exact flat colour (vector art), more for a generator's slightly noisy background, at most 40."""
    dev = np.abs(_border(image) - np.asarray(colour, np.int16)).max(axis=1)
    return int(np.clip(4 + 2 * np.percentile(dev[dev <= FLAT_TOLERANCE], 90), 4, 40))


def key_matte(image: np.ndarray, colour, *, tolerance: int = FLAT_TOLERANCE, feather: float = 0.7) -> np.ndarray:
    """Opacity ``float32 [H,W]``: 0 where a pixel is within ``tolerance`` of ``colour`` and connected to the
    image border through such pixels, 1 elsewhere, edges feathered by ``feather`` px (Gaussian sigma)."""
    from scipy import ndimage

    near = np.abs(image.astype(np.int16) - np.asarray(colour, np.int16)).max(axis=2) <= tolerance
    labels, _ = ndimage.label(near)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    background = np.isin(labels, edge[edge > 0])
    return np.clip(_feather((~background).astype(np.float32), feather), 0.0, 1.0)


def person_matte(image: np.ndarray, *, landscape: bool = False, sharpness: float = 12.0,
                 feather: float = 1.0) -> np.ndarray:
    """Person opacity of a photo ``uint8 [H,W,3]`` RGB → ``float32 [H,W]`` in [0,1] (selfie segmentation).

    ``landscape`` picks MediaPipe's 144x256 model (faster, coarser) instead of the 256x256 one.
    ``sharpness``: slope of the logistic applied around 0.5 (0 = raw mask).
    ``feather``: Gaussian sigma (px, at the image's scale) of the final edge softening.
    """
    rgb = _rgb(image)
    with _lock:  # the MediaPipe graph is not re-entrant
        result = _segmenter(1 if landscape else 0).process(rgb)
    mask = result.segmentation_mask
    if mask is None:
        raise MatteError("selfie segmentation returned no mask; use a photo with a person in it")
    mask = np.asarray(mask, dtype=np.float32)
    if mask.max() < 0.5:
        raise MatteError("found no person to cut out of the background; transparent backgrounds need a photo of a "
                         "person or a still on a plain background")
    if mask.shape != rgb.shape[:2]:
        mask = cv2.resize(mask, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
    if sharpness > 0:
        mask = 1.0 / (1.0 + np.exp(-sharpness * (mask - 0.5)))
    return np.clip(_feather(mask, feather), 0.0, 1.0).astype(np.float32)


def cut_out(image: np.ndarray, alpha: np.ndarray | None = None) -> np.ndarray:
    """``uint8 [H,W,4]`` RGBA: ``image`` with its background made transparent."""
    a = alpha_matte(image) if alpha is None else np.asarray(alpha, np.float32)
    return np.dstack([image[..., :3], np.clip(a * 255 + 0.5, 0, 255).astype(np.uint8)])


def load_still(path) -> np.ndarray:
    """A still to animate: ``uint8 [H,W,3]``, or ``[H,W,4]`` when the file has transparency.

    Read with :func:`landmarks.load_image` (its checks, EXIF rotation); a file with an alpha channel that is
    not fully opaque keeps it, with its own (straight) colours where it is not fully transparent and
    white where it is, so the animation stays transparent where the still was.
    """
    from PIL import Image, ImageOps

    import landmarks

    rgb = landmarks.load_image(path)
    with Image.open(path) as im:
        if im.mode not in ("RGBA", "LA", "PA", "RGBa", "La") and "transparency" not in im.info:
            return rgb
        im.seek(0)
        rgba = np.asarray(ImageOps.exif_transpose(im).convert("RGBA"))
    if rgba.shape[:2] != rgb.shape[:2] or rgba[..., 3].min() == 255:
        return rgb
    colour = np.where(rgba[..., 3:] > 0, rgba[..., :3], rgb)
    return np.ascontiguousarray(np.dstack([colour, rgba[..., 3]]))
