"""dlib back-end: HOG face detector + the 68-point shape predictor (iBUG 300-W).

A reference for the accuracy benchmark, never the default: the predictor's training
data (iBUG 300-W) is licensed for non-commercial use only. Needs the optional
``dlib-bin`` and ``face-recognition-models`` packages.
"""
from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np

from landmarks.detect import Detector, FaceLandmarks, box_around
from landmarks.errors import EmogetError

log = logging.getLogger(__name__)


def predictor_path() -> Path:
    """``shape_predictor_68_face_landmarks.dat`` inside the ``face_recognition_models`` package.

    Located through ``importlib`` because importing that package needs ``pkg_resources``.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise EmogetError("the dlib backend needs the face-recognition-models package "
                          "(pip install dlib-bin face-recognition-models); or use --backend mediapipe")
    path = Path(spec.origin).parent / "models" / "shape_predictor_68_face_landmarks.dat"
    if not path.exists():
        raise EmogetError(f"{path.name} is missing from face_recognition_models; reinstall that package")
    return path


class DlibDetector(Detector):
    """dlib frontal HOG detector and 68-point shape predictor.

    Args:
        upsample: how many times the detector upsamples the image (finds smaller faces,
            slower). ``None``: once for images under 1000 px on the long side, else never.
    """

    name = "dlib"

    def __init__(self, *, upsample: int | None = None) -> None:
        super().__init__()
        try:
            import dlib
        except ImportError as exc:
            raise EmogetError("the dlib backend needs dlib (pip install dlib-bin face-recognition-models); "
                              "or use --backend mediapipe") from exc
        self.upsample = upsample
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(predictor_path()))

    def find(self, image: np.ndarray) -> list[FaceLandmarks]:
        up = self.upsample if self.upsample is not None else (1 if max(image.shape[:2]) < 1000 else 0)
        rects, scores, _ = self._detector.run(image, up, 0.0)
        faces = []
        for rect, score in zip(rects, scores):
            shape = self._predictor(image, rect)
            points = np.array([(p.x, p.y) for p in shape.parts()], np.float32)
            box = (rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1)
            # The HOG margin is unbounded; squash it so scores compare with other back-ends.
            conf = float(1.0 / (1.0 + np.exp(-2.0 * score)))
            faces.append(FaceLandmarks(points=points, box=box_around(points, box, image.shape), score=conf,
                                       backend=self.name))
        return faces
