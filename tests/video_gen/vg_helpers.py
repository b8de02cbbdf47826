"""Tiny synthetic faces for the video_gen tests: no detector, no weights."""
import numpy as np

from video_gen.geometry import FaceFrame
from video_gen.prior import load_basis


def face_points(size: int = 64) -> np.ndarray:
    """The prior's mean face placed in a ``size`` px square (eye distance ≈ size/4), ``float32 [68,2]``."""
    unit = load_basis().neutral.astype(np.float64)
    frame = FaceFrame(origin=np.array([size / 2, size * 0.4]), scale=size / 4, angle=0.0)
    return frame.to_pixels(unit).astype(np.float32)


def textured(size: int = 64, seed: int = 0) -> np.ndarray:
    """A smooth random colour image ``uint8 [size,size,3]``."""
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)


