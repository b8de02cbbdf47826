"""landmarks stage: photo → face → 68 iBUG landmarks → FFHQ-aligned crop (and back).

Public API::

    img = load_image("me.jpg")                    # uint8 [H,W,3] RGB, EXIF-upright
    face = detect(img)                            # FaceLandmarks: points [68,2], box, score, backend, mesh
    faces = detect_all(img)                       # every face, largest first
    a = align(img, face.points, size=256)         # Aligned: image [256,256,3], points, transform
    out = paste_back(a.image, img, a.transform)   # uint8 [H,W,3]

Back-ends (``backend=``): ``mediapipe`` (default, offline), ``fan`` (face-alignment's
2D-FAN, needs its weight file locally), ``dlib`` (reference; non-commercial model).
Importing this package loads neither MediaPipe nor torch; back-ends load on first use.
"""
from landmarks.align import Aligned, AlignTransform, align, paste_back
from landmarks.detect import (
    BACKENDS,
    MIN_INTER_OCULAR_PX,
    Detector,
    FaceLandmarks,
    detect,
    detect_all,
    get_detector,
)
from landmarks.errors import (
    EmogetError,
    FaceTooSmall,
    ImageError,
    NoFaceFound,
    WeightsError,
)
from landmarks.io import DEFAULT_MAX_PIXELS, load_image

__all__ = [
    "BACKENDS",
    "DEFAULT_MAX_PIXELS",
    "MIN_INTER_OCULAR_PX",
    "AlignTransform",
    "Aligned",
    "Detector",
    "EmogetError",
    "FaceLandmarks",
    "FaceTooSmall",
    "ImageError",
    "NoFaceFound",
    "WeightsError",
    "align",
    "detect",
    "detect_all",
    "get_detector",
    "load_image",
    "paste_back",
]
