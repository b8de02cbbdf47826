"""Drawing landmarks on a photo (for ``emoget landmarks --draw`` and the page)."""
from __future__ import annotations

import cv2
import numpy as np

from landmarks.mesh68 import IBUG68_REGIONS

#: RGB colour per region of the 68 points.
REGION_COLOURS: dict[str, tuple[int, int, int]] = {
    "jaw": (255, 200, 0),
    "brows": (255, 90, 200),
    "nose": (0, 220, 255),
    "eyes": (60, 255, 60),
    "mouth": (255, 60, 60),
}
_OPEN = {"jaw": [range(17)], "brows": [range(17, 22), range(22, 27)], "nose": [range(27, 31), range(31, 36)]}
_CLOSED = {"eyes": [range(36, 42), range(42, 48)], "mouth": [range(48, 60), range(60, 68)]}


def draw_landmarks(image: np.ndarray, faces, *, box: bool = True, numbers: bool = False) -> np.ndarray:
    """A copy of ``image`` (``uint8 [H,W,3]``) with each face's 68 points, outlines and box drawn.

    ``faces``: one :class:`~landmarks.detect.FaceLandmarks` or a list of them.
    ``numbers``: also write each point's iBUG index (useful to check the ordering).
    """
    out = np.ascontiguousarray(np.asarray(image, np.uint8).copy())
    faces = faces if isinstance(faces, (list, tuple)) else [faces]
    for face in faces:
        pts = np.asarray(face.points, np.float32)
        scale = max(face.inter_ocular / 60.0, 0.5)
        thick = max(1, round(scale))
        if box:
            x0, y0, x1, y1 = (round(v) for v in face.box)
            cv2.rectangle(out, (x0, y0), (x1, y1), (255, 255, 255), thick, cv2.LINE_AA)
        for region, idx in IBUG68_REGIONS.items():
            colour = REGION_COLOURS[region]
            for r in _OPEN.get(region, []) + _CLOSED.get(region, []):
                poly = np.round(pts[list(r)] * 16).astype(np.int32)
                cv2.polylines(out, [poly], region in _CLOSED, colour, thick, cv2.LINE_AA, shift=4)
            for i in idx:
                cv2.circle(out, tuple(int(v) for v in np.round(pts[i] * 16)), int(16 * 1.5 * thick), colour, -1,
                           cv2.LINE_AA, shift=4)
                if numbers:
                    cv2.putText(out, str(i), tuple(int(v) + 2 for v in pts[i]), cv2.FONT_HERSHEY_SIMPLEX,
                                0.3 * scale, colour, 1, cv2.LINE_AA)
    return out
