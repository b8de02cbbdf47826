"""Face detection and 68-point landmarks behind one interface, with back-ends chosen by name.

``detect(image)`` returns the largest face's :class:`FaceLandmarks`; ``detect_all(image)``
lists every face, largest first. Back-ends (``BACKENDS``) are built on first use and
cached per process, so repeated calls (the pipeline, the page) pay their start-up once.
"""
from __future__ import annotations

import importlib
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from landmarks.errors import EmogetError, FaceTooSmall, NoFaceFound
from landmarks.io import ImageSource, load_image

log = logging.getLogger(__name__)

#: Smallest usable face: distance in pixels between the outer eye corners (iBUG 36 and 45).
#: An aligned 256-px crop spans about 4.5 of these distances, so below 32 px the crop is
#: upscaled more than ~1.8x and the eyes and mouth, which the animation moves, are only a
#: handful of pixels across. ``detect(..., min_inter_ocular=...)`` changes it per call.
MIN_INTER_OCULAR_PX = 32.0

DEFAULT_BACKEND = "mediapipe"


@dataclass(frozen=True, eq=False)
class FaceLandmarks:
    """One detected face.

    Attributes:
        points: ``float32 [68,2]`` (x, y) in pixels of the original image, iBUG order,
            subject's right eye = points 36-41.
        box: ``(x0, y0, x1, y1)`` pixels: the detector's face box grown to hold all 68
            points, clipped to the image.
        score: detection confidence in ``[0,1]`` (dlib: its SVM margin squashed into [0,1]; MediaPipe's
            whole-image fallback, which reports no score: 0.5).
        backend: name of the back-end that found it.
        mesh: ``float32 [478,3]`` MediaPipe face mesh (x, y pixels; z in the units of x,
            smaller = closer to the camera) or ``None`` for back-ends without one.
    """

    points: np.ndarray
    box: tuple[float, float, float, float]
    score: float
    backend: str
    mesh: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self):
        pts = np.asarray(self.points, np.float32)
        if pts.shape != (68, 2):
            raise ValueError(f"points must be [68,2], got {pts.shape}")
        object.__setattr__(self, "points", pts)
        if self.mesh is not None:
            object.__setattr__(self, "mesh", np.asarray(self.mesh, np.float32))
        object.__setattr__(self, "box", tuple(float(v) for v in self.box))

    @property
    def inter_ocular(self) -> float:
        """Outer eye corner distance (iBUG 36 to 45) in pixels."""
        return float(np.linalg.norm(self.points[45] - self.points[36]))

    @property
    def area(self) -> float:
        """Box area in square pixels (used to rank faces)."""
        x0, y0, x1, y1 = self.box
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)

    def to_json(self) -> dict:
        """Plain-data form: ``{"landmarks", "box", "score", "backend"}`` (the mesh is left out)."""
        return {
            "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in self.points],
            "box": [round(v, 2) for v in self.box],
            "score": round(float(self.score), 4),
            "backend": self.backend,
        }


class Detector(ABC):
    """A face landmark back-end. Subclasses set ``name`` and implement :meth:`find`.

    Instances are expensive (model graphs, networks); get them through
    :func:`get_detector`, which caches one per back-end and options per process.
    Calls are serialised with a per-instance lock, since the underlying graphs are
    not safe to share between threads.
    """

    name: ClassVar[str] = ""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    @abstractmethod
    def find(self, image: np.ndarray) -> list[FaceLandmarks]:
        """All faces in ``image`` (``uint8 [H,W,3]`` RGB), in any order."""

    def __call__(self, image: np.ndarray) -> list[FaceLandmarks]:
        with self._lock:
            faces = self.find(image)
        return sorted(faces, key=lambda f: (-f.area, f.box[0], f.box[1]))


#: Back-end name → "module:Class", imported on first use (keeps ``import landmarks`` light).
BACKENDS: dict[str, str] = {
    "mediapipe": "landmarks.backend_mediapipe:MediaPipeDetector",
    "fan": "landmarks.backend_fan:FanDetector",
    "dlib": "landmarks.backend_dlib:DlibDetector",
}

_CACHE: dict[tuple, Detector] = {}
_CACHE_LOCK = threading.Lock()


def register_backend(name: str, factory: str | Callable[..., Detector]) -> None:
    """Add or replace a back-end: ``factory`` is ``"module:Class"`` or a callable returning a Detector."""
    BACKENDS[name] = factory
    with _CACHE_LOCK:
        for key in [k for k in _CACHE if k[0] == name]:
            del _CACHE[key]


def get_detector(backend: str = DEFAULT_BACKEND, **options) -> Detector:
    """The cached detector for ``backend`` built with ``options`` (keyword arguments of its class)."""
    if backend not in BACKENDS:
        raise EmogetError(f"unknown landmark backend {backend!r}; choose one of {', '.join(sorted(BACKENDS))}")
    key = (backend, tuple(sorted(options.items())))
    with _CACHE_LOCK:
        det = _CACHE.get(key)
        if det is None:
            factory = BACKENDS[backend]
            if isinstance(factory, str):
                module, cls = factory.split(":")
                factory = getattr(importlib.import_module(module), cls)
            log.info("building landmark backend %s", backend)
            det = factory(**options)
            _CACHE[key] = det
    return det


def clear_cache() -> None:
    """Drop every cached detector (frees their models)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def _as_image(image: ImageSource) -> tuple[np.ndarray, str]:
    if isinstance(image, np.ndarray):
        if image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
            return np.ascontiguousarray(image), "the image"
        return load_image(image), "the image"
    label = str(getattr(image, "name", image)) if not isinstance(image, (bytes, bytearray, memoryview)) else "the upload"
    return load_image(image), repr(label)


def detect_all(image: ImageSource, *, backend: str = DEFAULT_BACKEND, **options) -> list[FaceLandmarks]:
    """Every face in ``image``, largest box first.

    Args:
        image: ``uint8 [H,W,3]`` RGB, or anything :func:`landmarks.load_image` reads.
        backend: ``"mediapipe"`` (default), ``"fan"`` or ``"dlib"``.
        **options: passed to the back-end's constructor (e.g. ``weights_path`` for ``fan``).

    Returns:
        list of :class:`FaceLandmarks` (possibly empty); no size check is applied.
    """
    img, _ = _as_image(image)
    return get_detector(backend, **options)(img)


def detect(
    image: ImageSource,
    *,
    backend: str = DEFAULT_BACKEND,
    face_index: int | None = None,
    min_inter_ocular: float = MIN_INTER_OCULAR_PX,
    **options,
) -> FaceLandmarks:
    """The landmarks of one face.

    Args:
        image: ``uint8 [H,W,3]`` RGB, or anything :func:`landmarks.load_image` reads.
        backend: ``"mediapipe"`` (default), ``"fan"`` or ``"dlib"``.
        face_index: which face when there are several, counting from 0 = largest
            (default: the largest).
        min_inter_ocular: refuse faces whose outer eye corners are closer than this
            many pixels (default ``MIN_INTER_OCULAR_PX``); 0 turns the check off.

    Raises:
        NoFaceFound: no face, or fewer faces than ``face_index + 1``.
        FaceTooSmall: the chosen face is below ``min_inter_ocular``.
    """
    img, label = _as_image(image)
    faces = get_detector(backend, **options)(img)
    return choose_face(faces, face_index=face_index, min_inter_ocular=min_inter_ocular, label=label,
                       backend=backend, image_size=(img.shape[1], img.shape[0]))


def choose_face(
    faces: list[FaceLandmarks],
    *,
    face_index: int | None = None,
    min_inter_ocular: float = MIN_INTER_OCULAR_PX,
    label: str = "the image",
    backend: str = DEFAULT_BACKEND,
    image_size: tuple[int, int] | None = None,
) -> FaceLandmarks:
    """Pick one face from :func:`detect_all`'s list (largest first), with :func:`detect`'s checks and errors."""
    dims = f"{image_size[0]}x{image_size[1]}, " if image_size else ""
    if not faces:
        raise NoFaceFound(f"no face in {label} ({dims}tried {backend}); use a well-lit frontal photo "
                          f"with the face at least {int(min_inter_ocular * 2.5)} px wide"
                          + ("" if backend == "dlib" else ", or try another backend"))
    index = 0 if face_index is None else int(face_index)
    if not -len(faces) <= index < len(faces):
        raise NoFaceFound(f"face index {index} asked for, but {label} has {len(faces)} face(s); "
                          f"use a face index from 0 to {len(faces) - 1} (0 = largest)")
    face = faces[index]
    if min_inter_ocular and face.inter_ocular < min_inter_ocular:
        raise FaceTooSmall(f"the face in {label} is too small: {face.inter_ocular:.0f} px between the outer eye "
                           f"corners, need at least {min_inter_ocular:.0f}; use a closer or higher-resolution photo")
    return face


def box_around(points: np.ndarray, box, shape: tuple[int, ...]) -> tuple[float, float, float, float]:
    """Union of ``box`` and the bounds of ``points [N,2]``, clipped to an image of ``shape`` (H, W, ...)."""
    h, w = shape[:2]
    x0 = min(float(box[0]), float(points[:, 0].min()))
    y0 = min(float(box[1]), float(points[:, 1].min()))
    x1 = max(float(box[2]), float(points[:, 0].max()))
    y1 = max(float(box[3]), float(points[:, 1].max()))
    return (max(0.0, x0), max(0.0, y0), min(float(w), x1), min(float(h), y1))
