"""face-alignment's 2D-FAN back-end, used only when its weights are already on disk.

face-alignment downloads ``2DFAN4-11f355bf06.pth.tar`` from its author's site on first
use; emoget never downloads at run time. The file is looked for, in order, at the
``weights_path`` argument, the ``EMOGET_FAN_WEIGHTS`` environment variable and
face-alignment's own cache (``<torch hub dir>/checkpoints/``). It holds a plain state
dict and is read with ``torch.load(weights_only=True)`` into face-alignment's ``FAN(4)``
with strict keys.

Faces are boxed by MediaPipe's full-range detector (bundled, offline) instead of
face-alignment's S3FD, whose weights would need a download too. The crop and the
heat-map decoding follow face-alignment (256-px crop around the box centre moved up
by 0.12 box heights, box size / 195 as scale; arg-max with a quarter-pixel shift on
the 64x64 heat maps).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np

from landmarks.detect import Detector, FaceLandmarks, box_around
from landmarks.errors import WeightsError

log = logging.getLogger(__name__)

FAN_FILE = "2DFAN4-11f355bf06.pth.tar"
FAN_URL = "https://www.adrianbulat.com/downloads/python-fan/" + FAN_FILE
CROP = 256
HEATMAP = 64
REFERENCE_SCALE = 195.0
CENTER_Y_OFFSET = 0.12


def default_weights_path() -> Path:
    """Where face-alignment itself keeps the 2D-FAN weights."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints" / FAN_FILE


def find_weights(weights_path: str | os.PathLike | None = None) -> Path:
    """The local 2D-FAN weight file, or :class:`WeightsError` saying how to get it."""
    candidates = [Path(p) for p in (weights_path, os.environ.get("EMOGET_FAN_WEIGHTS")) if p]
    candidates.append(default_weights_path())
    for path in candidates:
        if path.is_file():
            return path
    tried = ", ".join(str(p) for p in candidates)
    raise WeightsError(
        f"the fan backend needs face-alignment's 2D-FAN weights ({FAN_FILE}), not found (looked at {tried}); "
        f"download {FAN_URL} on a machine with internet and put it at {default_weights_path()} or pass its path "
        "(EMOGET_FAN_WEIGHTS=...), or use --backend mediapipe")


def load_fan(path: Path, *, device: str = "cpu"):
    """face-alignment's ``FAN(4)`` with the weights at ``path`` (tensors only, strict keys)."""
    import torch
    from face_alignment.models import FAN

    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # any failure to read means a bad weight file
        raise WeightsError(f"cannot read 2D-FAN weights {str(path)!r} ({exc}); download the file again") from exc
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    net = FAN(4)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{str(path)!r} is not a 2D-FAN-4 state dict ({str(exc).splitlines()[0]})") from exc
    return net.to(device).eval()


def crop_params(box) -> tuple[np.ndarray, float]:
    """face-alignment's crop centre ``[2]`` and scale for a face box ``(x0, y0, x1, y1)``."""
    x0, y0, x1, y1 = box
    center = np.array([(x0 + x1) / 2.0, (y0 + y1) / 2.0 - (y1 - y0) * CENTER_Y_OFFSET], np.float64)
    return center, ((x1 - x0) + (y1 - y0)) / REFERENCE_SCALE


def crop_matrix(center: np.ndarray, scale: float, *, resolution: int = CROP) -> np.ndarray:
    """``[2,3]`` affine, original → crop pixels, reproducing ``face_alignment.utils.crop``: the square of
    side ``200 * scale`` around ``center`` resized to ``resolution``. face-alignment starts the square one
    crop pixel in and floors its corner to whole pixels (on average half a source pixel); both are folded
    into the offset."""
    k = resolution / (200.0 * scale)
    t = resolution / 2.0 - 1.5 + k
    return np.array([[k, 0, t - k * center[0]], [0, k, t - k * center[1]]], np.float64)


def decode_heatmaps(heatmaps: np.ndarray, center: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """``[68,H,W]`` heat maps → ``(points [68,2]`` in original pixels, ``scores [68])``.

    Same as ``face_alignment.utils.get_preds_fromhm``: arg-max, a quarter-cell step toward the
    higher neighbour, cell centres at +0.5, then the crop's inverse (without its integer rounding).
    """
    c, h, w = heatmaps.shape
    flat = heatmaps.reshape(c, -1)
    idx = flat.argmax(1)
    scores = flat[np.arange(c), idx]
    px, py = idx % w, idx // w
    pts = np.stack([px, py], 1).astype(np.float64)
    for j in range(c):
        x, y = px[j], py[j]
        if 0 < x < w - 1 and 0 < y < h - 1:
            hm = heatmaps[j]
            pts[j] += np.sign([hm[y, x + 1] - hm[y, x - 1], hm[y + 1, x] - hm[y - 1, x]]) * 0.25
    pts += 0.5
    side = 200.0 * scale
    original = (pts / np.array([w, h]) - 0.5) * side + center
    return original.astype(np.float32), scores


class FanDetector(Detector):
    """2D-FAN landmarks on MediaPipe face boxes.

    Args:
        weights_path: the ``2DFAN4-*.pth.tar`` file (default: see :func:`find_weights`).
        device: torch device string for the network.
        network: an already built module mapping ``[B,3,256,256]`` in ``[0,1]`` to
            ``[B,68,64,64]`` heat maps (or a list whose last item is that); skips loading
            weights. For tests and for callers that manage the model themselves.
        min_detection_confidence: face box score threshold.
    """

    name = "fan"

    def __init__(self, *, weights_path: str | os.PathLike | None = None, device: str = "cpu", network=None,
                 min_detection_confidence: float = 0.5) -> None:
        super().__init__()
        self.device = device
        self.net = network if network is not None else load_fan(find_weights(weights_path), device=device)
        import mediapipe as mp

        from landmarks.backend_mediapipe import native_stderr_to_log

        self._quiet = native_stderr_to_log
        with native_stderr_to_log():
            self._boxes = mp.solutions.face_detection.FaceDetection(
                model_selection=1, min_detection_confidence=float(min_detection_confidence))

    def boxes(self, image: np.ndarray) -> list[tuple[tuple[float, float, float, float], float]]:
        """Face boxes ``(x0, y0, x1, y1)`` pixels with scores."""
        h, w = image.shape[:2]
        with self._quiet():
            res = self._boxes.process(image)
        out = []
        for det in res.detections or []:
            rb = det.location_data.relative_bounding_box
            out.append(((rb.xmin * w, rb.ymin * h, (rb.xmin + rb.width) * w, (rb.ymin + rb.height) * h),
                        float(det.score[0])))
        return out

    def landmarks_in_boxes(self, image: np.ndarray, boxes) -> list[np.ndarray]:
        """``[68,2]`` points in image pixels for each box."""
        import torch

        if not boxes:
            return []
        params, crops = [], []
        for box in boxes:
            center, scale = crop_params(box)
            params.append((center, scale))
            crops.append(cv2.warpAffine(image, crop_matrix(center, scale), (CROP, CROP), flags=cv2.INTER_LINEAR,
                                        borderMode=cv2.BORDER_CONSTANT))
        x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div(255.0).to(self.device)
        with torch.inference_mode():
            out = self.net(x)
        if isinstance(out, (list, tuple)):
            out = out[-1]
        hms = out.detach().float().cpu().numpy()
        if hms.shape[1:] != (68, HEATMAP, HEATMAP):
            raise WeightsError(f"the FAN network returned {tuple(hms.shape)}, expected [B,68,{HEATMAP},{HEATMAP}]")
        return [decode_heatmaps(hm, center, scale)[0] for (center, scale), hm in zip(params, hms)]

    def find(self, image: np.ndarray) -> list[FaceLandmarks]:
        found = self.boxes(image)
        pts = self.landmarks_in_boxes(image, [b for b, _ in found])
        return [FaceLandmarks(points=p, box=box_around(p, b, image.shape), score=s, backend=self.name)
                for p, (b, s) in zip(pts, found)]
