"""Transparent backgrounds: a person/background alpha matte from MediaPipe's bundled selfie segmentation.

MediaPipe 0.10.21 ships the selfie-segmentation TFLite models inside the wheel
(``mediapipe/modules/selfie_segmentation``), so nothing is downloaded. The raw
mask is soft at the hair line; :func:`alpha_matte` sharpens it a little and
feathers the edge by a pixel so the cut-out neither halos nor looks jagged.
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


def alpha_matte(image: np.ndarray, *, landscape: bool = False, sharpness: float = 12.0, feather: float = 1.0) -> np.ndarray:
    """Foreground (person) opacity of ``image uint8 [H,W,3]`` RGB → ``float32 [H,W]`` in [0,1].

    ``landscape`` picks MediaPipe's 144x256 model (faster, coarser) instead of the 256x256 one.
    ``sharpness``: slope of the logistic applied around 0.5 (0 = raw mask).
    ``feather``: Gaussian sigma (px, at the image's scale) of the final edge softening.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] < 3:
        raise MatteError(f"alpha_matte needs a uint8 [H,W,3] RGB image, got {image.dtype} {image.shape}")
    rgb = np.ascontiguousarray(image[..., :3])
    with _lock:  # the MediaPipe graph is not re-entrant
        result = _segmenter(1 if landscape else 0).process(rgb)
    mask = result.segmentation_mask
    if mask is None:
        raise MatteError("selfie segmentation returned no mask; use a photo with a person in it")
    mask = np.asarray(mask, dtype=np.float32)
    if mask.shape != rgb.shape[:2]:
        mask = cv2.resize(mask, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
    if sharpness > 0:
        mask = 1.0 / (1.0 + np.exp(-sharpness * (mask - 0.5)))
    if feather > 0:
        k = int(2 * np.ceil(2 * feather) + 1)
        mask = cv2.GaussianBlur(mask, (k, k), feather)
    return np.clip(mask, 0.0, 1.0).astype(np.float32)


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
