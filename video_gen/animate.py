"""One still + its 68 landmarks → a looping animation of an expression.

``animate(still, points, expression=...)`` normalises the face (its own scale and
orientation, :class:`~video_gen.geometry.FaceFrame`), asks the motion model (or the
prior) for a looping displacement sequence, resamples it to the requested frame
count, maps it back to this face's pixels and warps the still frame by frame
(:class:`~video_gen.warp.Warper`, set up once). It works at whatever resolution the
still has: warp at the output size, not at the generator's.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.interpolate import CubicSpline

from landmarks.errors import EmogetError
from video_gen.expressions import get_expression
from video_gen.geometry import FaceFrame
from video_gen.warp import Warper, WarpOptions

log = logging.getLogger(__name__)


@dataclass
class Animation:
    """``frames``: list of ``uint8 [H,W,C]``; ``points``: ``float32 [T,68,2]`` pixels per frame; ``fps``."""

    frames: list[np.ndarray]
    points: np.ndarray
    fps: float
    expression: str = ""

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def duration_s(self) -> float:
        return len(self.frames) / self.fps

    def save(self, path, **kwargs):
        """Shortcut for :func:`video_gen.export.save_animation` with this animation's fps."""
        from video_gen.export import save_animation

        return save_animation(self.frames, path, fps=self.fps, **kwargs)


class LandmarksFileError(EmogetError, ValueError):
    """A landmarks file is missing, not JSON, or does not hold 68 (x, y) points."""


def load_points(path, *, image_size: tuple[int, int] | None = None) -> np.ndarray:
    """A still's landmarks ``float32 [68,2]`` (x, y) pixels from a JSON file.

    Accepts what ``emoget landmarks PHOTO --json`` prints (``{"landmarks": [...], ...}``), an object
    ``{"points": [...]}`` or a bare ``[[x, y], ...]`` list, in iBUG order. With ``image_size``
    ``(width, height)``, points mostly outside that image are refused (measured on another image).
    """
    path = Path(path)
    redo = "write it with `emoget landmarks STILL --json > FILE.json`, or leave --landmarks out to detect them"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise LandmarksFileError(f"landmarks file {str(path)!r} does not exist; {redo}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LandmarksFileError(f"cannot read landmarks file {str(path)!r} ({exc}); {redo}") from None
    except json.JSONDecodeError as exc:
        raise LandmarksFileError(f"landmarks file {str(path)!r} is not valid JSON ({exc}); {redo}") from None
    if isinstance(data, dict):
        key = next((k for k in ("landmarks", "points") if k in data), None)
        if key is None:
            raise LandmarksFileError(f"landmarks file {str(path)!r} has no \"landmarks\" or \"points\" key; {redo}")
        data = data[key]
    try:
        pts = np.asarray(data, np.float64)
    except (TypeError, ValueError):
        pts = np.empty(0)
    if pts.shape != (68, 2) or not np.isfinite(pts).all():
        shape = "x".join(map(str, pts.shape)) if pts.size else "no numbers"
        raise LandmarksFileError(f"landmarks file {str(path)!r} must hold 68 finite (x, y) points, got {shape}; "
                                 f"{redo}")
    if image_size is not None:
        w, h = image_size
        inside = ((pts >= 0) & (pts < [w, h])).all(1).mean()
        if inside < 0.5:
            raise LandmarksFileError(f"the points in {str(path)!r} lie outside the {w}x{h} still (measured on "
                                     f"another image?); {redo}")
    return pts.astype(np.float32)


def resample_loop(disp: np.ndarray, frames: int) -> np.ndarray:
    """A closed loop ``[T+1,...]`` (row T == row 0) → ``frames`` evenly spaced phases ``[frames,...]`` (periodic spline)."""
    disp = np.asarray(disp, np.float64)
    t0 = disp.shape[0] - 1
    if frames == t0:
        return disp[:-1].astype(np.float32)
    flat = disp.reshape(t0 + 1, -1).copy()
    flat[-1] = flat[0]
    spline = CubicSpline(np.linspace(0, 1, t0 + 1), flat, bc_type="periodic", axis=0)
    out = spline(np.arange(frames) / frames)
    return out.reshape(frames, *disp.shape[1:]).astype(np.float32)


def motion_sequence(points: np.ndarray, *, expression: str, intensity: float = 1.0, frames: int = 24,
                    seed: int | None = None, generator=None, model=None, source: str = "model") -> np.ndarray:
    """Landmark positions ``float32 [frames,68,2]`` (pixels of this face) for one loop of ``expression``.

    ``source``: ``"model"`` (the MoCoGAN generator; ``model`` = a loaded one or None for the shipped
    default) or ``"prior"`` (sample the AU prior directly). An expression the model was not trained on
    falls back to the prior.
    """
    points = np.asarray(points, np.float64)
    if points.shape != (68, 2) or not np.isfinite(points).all():
        raise EmogetError(f"landmarks must be 68 finite (x, y) points, got shape {points.shape}")
    if frames < 2:
        raise EmogetError(f"an animation needs at least 2 frames, got {frames}")
    get_expression(expression)
    frame = FaceFrame.from_points(points)
    content = frame.to_unit(points).astype(np.float32)
    if source not in ("model", "prior"):
        raise EmogetError(f"unknown motion source {source!r}; use 'model' or 'prior'")
    disp = None
    if source == "model":
        from video_gen.motion import generate, load_motion_model

        G = model if model is not None and not isinstance(model, str) else load_motion_model(model)
        if expression in G.cfg.class_names:
            disp = generate(G, content, expression, intensity=intensity, seed=seed, generator=generator)[0]
        else:
            log.warning("motion model has no %r; using the expression prior (retrain with `emoget train-motion`)",
                        expression)
    if disp is None:
        from video_gen.prior import sample_sequence

        rng = np.random.default_rng(seed) if generator is None else np.random.default_rng(int(generator.initial_seed()))
        disp = sample_sequence(expression, frames=16, intensity=intensity, rng=rng, content=content)
    loop = resample_loop(disp, frames)
    return (points[None] + frame.vectors_to_pixels(loop)).astype(np.float32)


def animate(still: np.ndarray, points: np.ndarray, *, expression: str, intensity: float = 1.0, frames: int = 24,
            fps: float = 12.0, seed: int | None = None, generator=None, model=None, source: str = "model",
            warp: WarpOptions | None = None, peak: np.ndarray | None = None) -> Animation:
    """Animate ``still`` (``uint8 [H,W,3]``, or ``[H,W,4]`` with alpha) whose landmarks are ``points [68,2]`` px.

    Args:
        expression: a name in :data:`video_gen.expressions.EXPRESSIONS`.
        intensity: 0 (barely) .. 1 (full).
        frames, fps: the loop's length; it lasts ``frames / fps`` seconds and its last frame leads
            back into its first.
        seed / generator: make the take reproducible (``torch.Generator``); None = random.
        model: a loaded :class:`~video_gen.motion.MotionGenerator`, a weights path, or None (shipped default).
        source: ``"model"`` or ``"prior"`` (see :func:`motion_sequence`).
        warp: :class:`~video_gen.warp.WarpOptions` (piecewise-affine by default, ``method="tps"`` for a spline).
        peak: the same face drawn with the expression (``uint8``, the still's shape and landmarks), e.g. a
            vector style's own expression art: both are warped alike and the frames blend into it as the
            expression rises (:func:`peak_weights`), so the apex shows the drawn expression crisply.
    Returns an :class:`Animation` (frames, per-frame landmarks ``[T,68,2]``, fps).
    """
    still = np.asarray(still)
    if still.dtype != np.uint8 or still.ndim != 3 or still.shape[2] not in (3, 4):
        raise EmogetError(f"the still must be a uint8 RGB(A) image [H,W,3|4], got {still.dtype} {still.shape}")
    if fps <= 0:
        raise EmogetError(f"fps must be positive, got {fps}")
    seq = motion_sequence(points, expression=expression, intensity=intensity, frames=frames, seed=seed,
                          generator=generator, model=model, source=source)
    warper = Warper(still, points, options=warp)
    out = [warper.warp(p) for p in seq]
    if peak is not None:
        peak = np.asarray(peak)
        if peak.shape != still.shape or peak.dtype != np.uint8:
            raise EmogetError(f"the peak image must match the still ({still.dtype} {still.shape}), "
                              f"got {peak.dtype} {peak.shape}")
        weights = peak_weights(points, seq) * min(1.0, intensity / 0.3)
        peak_warper = Warper(peak, points, options=warp)
        out = [f if w <= 0.0 else _blend(f, peak_warper.warp(p), w) for f, p, w in zip(out, seq, weights)]
    return Animation(frames=out, points=seq, fps=float(fps), expression=expression)


# Brows and mouth: the parts an expression moves (eyes blink in every expression, so they don't count).
_EXPRESSIVE = np.r_[17:27, 48:68]


def peak_weights(points: np.ndarray, seq: np.ndarray, *, low: float = 0.3, high: float = 0.7) -> np.ndarray:
    """``float32 [T]`` in [0,1]: how far each frame of ``seq [T,68,2]`` is into the expression.

    The brows' and mouth's displacement from ``points [68,2]`` once head motion (a similarity fit) is
    taken out, relative to the loop's largest, through a smoothstep from ``low`` to ``high``: 0 at rest
    (so a loop that starts and ends at rest starts and ends on the still), 1 around the apex.
    """
    from video_gen.geometry import apply_affine, fit_similarity

    rest = np.asarray(points, np.float64)
    mags = []
    for p in np.asarray(seq, np.float64):
        m = fit_similarity(p, rest)
        mags.append(float(np.linalg.norm(apply_affine(m, p)[_EXPRESSIVE] - rest[_EXPRESSIVE], axis=1).mean()))
    mags = np.asarray(mags)
    if mags.max() <= 1e-6:
        return np.zeros(len(mags), np.float32)
    x = np.clip((mags / mags.max() - low) / (high - low), 0.0, 1.0)
    return (x * x * (3 - 2 * x)).astype(np.float32)


def _blend(a: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
    if w >= 1.0:
        return b
    return np.clip(np.rint(a.astype(np.float32) * (1 - w) + b.astype(np.float32) * w), 0, 255).astype(np.uint8)
