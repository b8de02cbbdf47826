"""Drive a still with a video of a real face doing the expression.

Per frame: landmarks from the landmarks stage; a gap-filling, zero-phase
smoothing over time; then each frame is split into the head's similarity motion
(roll, scale, shift relative to the first frame's face frame) and the expression
(the landmarks in the frame's own face units minus the reference frame's). Both
are retargeted to the still's geometry — the expression added to the still's own
normalised shape, the head motion in the still's scale and orientation — and the
still is warped and exported as usual.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import numpy as np
from scipy.ndimage import gaussian_filter1d

from landmarks.errors import EmogetError
from video_gen.animate import Animation, resample_loop
from video_gen.geometry import FaceFrame
from video_gen.warp import Warper, WarpOptions

log = logging.getLogger(__name__)


class DriveError(EmogetError):
    """The driving video cannot be used."""


def read_video(path, *, max_frames: int = 240, max_side: int = 640) -> tuple[list[np.ndarray], float]:
    """Frames ``uint8 [H,W,3]`` (downscaled so the longer side is at most ``max_side``) and the video's fps."""
    import cv2
    import imageio_ffmpeg

    try:
        reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
        meta = next(reader)
    except (OSError, RuntimeError, StopIteration) as exc:
        raise DriveError(f"cannot read the driving video {path!s} ({exc}); use an MP4/WebM/MOV file") from exc
    w, h = meta["size"]
    fps = float(meta.get("fps") or 25.0)
    s = min(1.0, max_side / max(w, h))
    frames = []
    for raw in reader:
        f = np.frombuffer(raw, np.uint8).reshape(h, w, 3)
        frames.append(cv2.resize(f, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA) if s < 1 else f.copy())
        if len(frames) >= max_frames:
            reader.close()
            break
    if len(frames) < 2:
        raise DriveError(f"the driving video {path!s} has fewer than 2 frames")
    return frames, fps


def track(frames: Iterable[np.ndarray], *, detect: Callable | None = None, min_found: float = 0.25) -> np.ndarray:
    """Landmarks ``float32 [T,68,2]`` per frame; frames without a usable face are filled from their neighbours.

    Any landmarks error of one frame (no face, a face too small, ...) only marks that frame as missing;
    :class:`DriveError` if a face is found in fewer than 2 frames or fewer than ``min_found`` of them.
    """
    if detect is None:
        import landmarks

        detect = landmarks.detect
    pts, ok, first_error = [], [], None
    for f in frames:
        try:
            pts.append(np.asarray(detect(f).points, np.float64))
            ok.append(True)
        except EmogetError as exc:
            first_error = first_error or exc
            pts.append(np.full((68, 2), np.nan))
            ok.append(False)
    pts = np.stack(pts)
    ok = np.array(ok)
    if ok.sum() < max(2, min_found * len(ok)):
        why = f" (e.g. {first_error})" if first_error else ""
        raise DriveError(f"a face was found in only {ok.sum()} of the driving video's {len(ok)} frames{why}; film "
                         "your face frontally, well lit, filling a third of the frame")
    if not ok.all():
        idx = np.arange(len(pts))
        flat = pts.reshape(len(pts), -1)
        for j in range(flat.shape[1]):
            flat[~ok, j] = np.interp(idx[~ok], idx[ok], flat[ok, j])
        log.info("filled %d frame(s) without a usable face", (~ok).sum())
    return pts.astype(np.float32)


def retarget(driving: np.ndarray, still_points: np.ndarray, *, smooth_sigma: float = 1.0, reference: int | str = 0,
             intensity: float = 1.0, head: float = 1.0, close_loop: bool = True) -> np.ndarray:
    """Driving landmarks ``[T,68,2]`` → the still's landmarks ``float32 [T,68,2]`` doing the same motion.

    ``reference``: the driving frame taken as the face at rest (index, or ``"median"`` for the
    per-point median shape). ``intensity`` scales the expression, ``head`` the head motion.
    ``close_loop`` spreads the last frame's offset from the first over the clip so it loops.
    """
    d = np.asarray(driving, np.float64)
    if d.ndim != 3 or d.shape[1:] != (68, 2) or len(d) < 2:
        raise DriveError(f"driving landmarks must be [T>=2,68,2], got {d.shape}")
    if smooth_sigma > 0:
        d = gaussian_filter1d(d, smooth_sigma, axis=0, mode="nearest")
    frames = [FaceFrame.from_points(p) for p in d]
    units = np.stack([f.to_unit(p) for f, p in zip(frames, d)])
    if reference == "median":
        ref_unit = np.median(units, 0)
        ref = frames[int(np.argmin(np.abs(units - ref_unit).sum((1, 2))))]
    else:
        ref_unit, ref = units[int(reference)], frames[int(reference)]
    expr = (units - ref_unit) * intensity  # [T,68,2] face units, the driver's own shape removed
    still = FaceFrame.from_points(still_points)
    base = still.to_unit(still_points)
    out = []
    for f, e in zip(frames, expr):
        roll = (f.angle - ref.angle) * head
        scale = (f.scale / ref.scale) ** head
        shift = ref.vectors_to_unit(f.origin - ref.origin) * head  # in the reference face's units
        moved = FaceFrame(origin=still.origin + still.vectors_to_pixels(shift), scale=still.scale * scale,
                          angle=still.angle + roll)
        out.append(moved.to_pixels(base + e))
    out = np.stack(out)
    if close_loop:
        t = np.linspace(0, 1, len(out))[:, None, None]
        out = out - t * (out[-1] - out[0])
    return out.astype(np.float32)


def drive(still: np.ndarray, points: np.ndarray, video, *, fps: float | None = None, frames: int | None = None,
          max_frames: int = 120, detect: Callable | None = None, smooth_sigma: float = 1.0, intensity: float = 1.0,
          head: float = 1.0, warp: WarpOptions | None = None) -> Animation:
    """Animate ``still`` (``uint8 [H,W,3|4]``, landmarks ``points [68,2]``) with the motion in ``video``.

    ``video``: a path, or a list of ``uint8 [H,W,3]`` frames (taken at ``fps``, default 12).
    ``fps`` / ``frames``: the output's rate and length. By default the clip keeps its own timing; ``fps``
    alone resamples it to that rate at its own speed; ``frames`` alone spreads that many frames over
    the clip; both give ``frames`` frames at ``fps``, the whole clip's motion sped up or slowed to fit.
    ``detect``: landmark detector ``image -> obj with .points [68,2]`` (default :func:`landmarks.detect`).
    """
    if fps is not None and not 0 < fps <= 60:
        raise DriveError(f"fps must be above 0 and at most 60, got {fps}")
    if frames is not None and not 2 <= frames <= 240:
        raise DriveError(f"frames must be between 2 and 240, got {frames}")
    if isinstance(video, (list, tuple)):
        clip, vfps = list(video), float(fps or 12.0)
    else:
        clip, vfps = read_video(video, max_frames=max_frames)
    clip = clip[:max_frames]
    seq = retarget(track(clip, detect=detect), points, smooth_sigma=smooth_sigma, intensity=intensity, head=head)
    out_fps = float(fps or vfps)
    if frames is None and fps is not None and out_fps != vfps:
        frames = max(2, round((len(seq) - 1) * out_fps / vfps))
    if frames is not None:
        if fps is None:
            out_fps = frames * vfps / (len(seq) - 1)
        seq = resample_loop(seq, frames)  # the retargeted clip is a closed loop: its last frame is its first
    warper = Warper(np.asarray(still), points, options=warp)
    return Animation(frames=[warper.warp(p) for p in seq], points=seq, fps=out_fps, expression="driven")
