"""MediaPipe back-end (the default): full-range face detector, then the refined face mesh per face.

Uses the models bundled in the ``mediapipe`` wheel (no download). Each face found by
the full-range BlazeFace detector is cut out as a square around its box and given to
the face mesh (478 points with refined eyes and irises), so small faces in large
photos and several faces per photo both work; the 68 iBUG points come from the mesh
through :func:`landmarks.mesh68.mesh_to_ibug68`. When the detector finds nothing, the
face mesh's own short-range detector gets the whole image as a fallback. Both graphs
run in static-image mode (no tracking between calls), so results are deterministic.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading

import cv2
import numpy as np

from landmarks.detect import Detector, FaceLandmarks, box_around
from landmarks.errors import EmogetError
from landmarks.mesh68 import mesh_to_ibug68

log = logging.getLogger(__name__)

#: The crop given to the face mesh is this many times the detector's box side, and at most
#: ``CROP_MAX`` pixels (the mesh model itself works at 192-256 px).
CROP_FACTOR = 2.0
CROP_MAX = 512


_FD_LOCK = threading.Lock()


def _flush_c_stdio() -> None:
    """``fflush(NULL)``: push out what native code buffered in C stdio before fd 2 is switched back."""
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):  # pragma: no cover - platforms without a C runtime handle
        pass


@contextlib.contextmanager
def native_stderr_to_log():
    """Route what native code writes to file descriptor 2 (TFLite and absl start-up chatter) to the debug log.

    MediaPipe's C++ side prints warnings straight to the process's stderr, which would break
    the CLI's one-line errors; this captures them around each MediaPipe call.
    """
    with _FD_LOCK:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):  # no usable fd 2 (embedded interpreters): nothing to route
            yield
            return
        with tempfile.TemporaryFile() as tmp:
            os.dup2(tmp.fileno(), 2)
            try:
                yield
            finally:
                with contextlib.suppress(OSError, ValueError):
                    sys.stderr.flush()
                _flush_c_stdio()
                os.dup2(saved, 2)
                os.close(saved)
                tmp.seek(0)
                text = tmp.read().decode("utf-8", "replace").strip()
                if text:
                    log.debug("mediapipe: %s", text)


class MediaPipeDetector(Detector):
    """MediaPipe face detection + 478-point face mesh, mapped to 68 iBUG points.

    Args:
        min_detection_confidence: BlazeFace score threshold in ``[0,1]``.
        max_faces: at most this many faces per image.
    """

    name = "mediapipe"

    def __init__(self, *, min_detection_confidence: float = 0.5, max_faces: int = 10) -> None:
        super().__init__()
        try:
            import mediapipe as mp
        except ImportError as exc:  # pragma: no cover - mediapipe is pinned
            raise EmogetError("the mediapipe backend needs the mediapipe package; run `make setup`") from exc
        self.max_faces = int(max_faces)
        with native_stderr_to_log():
            self._build(mp, float(min_detection_confidence))

    def _build(self, mp, min_detection_confidence: float) -> None:
        self._detector = mp.solutions.face_detection.FaceDetection(
            model_selection=1, min_detection_confidence=min_detection_confidence)
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=1, refine_landmarks=True, min_detection_confidence=0.3)
        self._mp = mp
        self._min_conf = min_detection_confidence
        self._mesh_whole = None  # built on first use: most photos never need the fallback

    def find(self, image: np.ndarray) -> list[FaceLandmarks]:
        with native_stderr_to_log():
            return self._find(image)

    def _find(self, image: np.ndarray) -> list[FaceLandmarks]:
        h, w = image.shape[:2]
        res = self._detector.process(image)
        faces = []
        for det in (res.detections or [])[: self.max_faces]:
            rb = det.location_data.relative_bounding_box
            box = (rb.xmin * w, rb.ymin * h, (rb.xmin + rb.width) * w, (rb.ymin + rb.height) * h)
            mesh = self._mesh_in_box(image, box)
            if mesh is None:
                log.debug("face at %s: detector found it, face mesh did not", box)
                continue
            faces.append(self._result(image, mesh, box, float(det.score[0])))
        if not faces:
            faces = self._whole_image(image)
        return _drop_duplicates(faces)

    def _mesh_in_box(self, image: np.ndarray, box) -> np.ndarray | None:
        """Face mesh ``[478,3]`` in image pixels for the face in ``box``, or None."""
        x0, y0, x1, y1 = box
        side = max(x1 - x0, y1 - y0) * CROP_FACTOR
        out = int(min(CROP_MAX, max(64, round(side))))
        s = out / side
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        m = np.array([[s, 0, out / 2 - s * cx], [0, s, out / 2 - s * cy]], np.float64)
        crop = cv2.warpAffine(image, m, (out, out), flags=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
        res = self._mesh.process(crop)
        if not res.multi_face_landmarks:
            return None
        mesh = _to_pixels(res.multi_face_landmarks[0], out, out)
        mesh[:, 0] = (mesh[:, 0] - m[0, 2]) / s
        mesh[:, 1] = (mesh[:, 1] - m[1, 2]) / s
        mesh[:, 2] /= s
        nose = mesh[1]
        if not (x0 <= nose[0] <= x1 and y0 <= nose[1] <= y1):
            return None  # the mesh latched onto a neighbouring face
        return mesh

    def _whole_image(self, image: np.ndarray) -> list[FaceLandmarks]:
        h, w = image.shape[:2]
        if self._mesh_whole is None:
            self._mesh_whole = self._mp.solutions.face_mesh.FaceMesh(
                static_image_mode=True, max_num_faces=self.max_faces, refine_landmarks=True,
                min_detection_confidence=self._min_conf)
        res = self._mesh_whole.process(image)
        faces = []
        for lm in res.multi_face_landmarks or []:
            mesh = _to_pixels(lm, w, h)
            lo, hi = mesh[:, :2].min(0), mesh[:, :2].max(0)
            faces.append(self._result(image, mesh, (*lo, *hi), 0.5))
        return faces

    def _result(self, image: np.ndarray, mesh: np.ndarray, box, score: float) -> FaceLandmarks:
        points = mesh_to_ibug68(mesh[:, :2])
        return FaceLandmarks(points=points, box=box_around(points, box, image.shape), score=score,
                             backend=self.name, mesh=mesh)


def _to_pixels(landmarks, w: int, h: int) -> np.ndarray:
    """MediaPipe normalised landmarks → ``float32 [478,3]`` pixels (z scaled like x)."""
    return np.array([(p.x * w, p.y * h, p.z * w) for p in landmarks.landmark], np.float32)


def _drop_duplicates(faces: list[FaceLandmarks], iou: float = 0.5) -> list[FaceLandmarks]:
    kept: list[FaceLandmarks] = []
    for f in sorted(faces, key=lambda f: -f.score):
        if all(_iou(f.box, k.box) < iou for k in kept):
            kept.append(f)
    return kept


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
