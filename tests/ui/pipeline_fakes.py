"""Small stand-in stage callables for testing the pipeline's own logic (options, cache, progress,
files, batch resume) quickly, without models. The product never uses these.

Run as a script it is a batch driver for the SIGKILL test:
``python pipeline_fakes.py IN_DIR OUT_DIR WORKERS DELAY``.
"""
from __future__ import annotations

import io
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from PIL import Image, UnidentifiedImageError

from landmarks.errors import ImageError, NoFaceFound
from ui.pipeline import Pipeline, Stages

# A plausible 68-point layout in a unit square (jaw arc, brows, nose, eyes, mouth) — geometry is irrelevant here.
_t = np.linspace(0, 1, 68, dtype=np.float32)
UNIT_POINTS = np.stack([0.2 + 0.6 * _t, 0.3 + 0.4 * np.sin(np.pi * _t)], axis=1).astype(np.float32)


def load_image(src, *, name=None):
    try:
        if isinstance(src, (bytes, bytearray)):
            src = io.BytesIO(src)
        with Image.open(src) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageError(f"cannot read {name or src!r} as an image ({exc}); give a JPEG or PNG photo") from exc


def detect(image, *, backend="mediapipe", face_index=None):
    if image.max() < 10:
        raise NoFaceFound("no face found — try a front-facing photo")
    h, w = image.shape[:2]
    pts = UNIT_POINTS * np.array([w, h], dtype=np.float32)
    return SimpleNamespace(points=pts, box=(0.2 * w, 0.3 * h, 0.8 * w, 0.7 * h), score=0.9, backend=backend, mesh=None)


def align(image, points, *, size=256):
    crop = np.asarray(Image.fromarray(image).resize((size, size)))
    return SimpleNamespace(image=crop, points=UNIT_POINTS * size, transform=SimpleNamespace(size=size))


class FakeStylizer:
    """Styles tint the crop; the 'latent' is the crop's mean colour. Counts inversions."""

    resolution = 16
    styles = ("alpha", "beta", "gamma")
    inversions = 0

    def __init__(self, weights=None, device="cpu", delay=0.0):
        self.delay = delay

    def invert(self, crop, *, seed, steps, points=None, progress=None, optimizer="lbfgs"):
        type(self).inversions += 1
        for i in range(4):
            if progress:
                progress((i + 1) / 4)
        time.sleep(self.delay)
        return crop.reshape(-1, 3).mean(0) + seed

    def render(self, latent, style, *, strength, size, upscale=True):
        tint = {"alpha": (1.0, 0.6, 0.6), "beta": (0.6, 1.0, 0.6), "gamma": (0.6, 0.6, 1.0)}[style]
        img = np.ones((size, size, 3), np.float32) * np.clip(latent, 0, 255) * np.array(tint) * (1 - 0.5 * strength)
        img[size // 4: size // 2, size // 4: 3 * size // 4] = 255
        return img.clip(0, 255).astype(np.uint8)


def make_animate(delay=0.0):
    def animate(still, points, *, expression, intensity, frames, fps, seed):
        time.sleep(delay)
        shift = {"happy": 1, "sad": -1, "surprised": 2}.get(expression, 0)
        out = np.stack([np.roll(still, shift * round(intensity * 3 * np.sin(2 * np.pi * t / frames)), axis=0)
                        for t in range(frames)])
        out[:, 0, 0] = (np.arange(frames)[:, None] * 255 // frames).astype(np.uint8)  # every frame distinct
        return SimpleNamespace(frames=out, points=np.repeat(points[None], frames, 0), fps=fps)

    return animate


def paste_back(crop, original, transform):
    out = original.copy()
    h, w = min(crop.shape[0], out.shape[0]), min(crop.shape[1], out.shape[1])
    out[:h, :w] = crop[:h, :w]
    return out


def alpha_matte(frames):
    m = np.zeros(frames.shape[:3], np.float32)
    h = frames.shape[1]
    m[:, h // 8: -h // 8] = 1.0
    return m


def save_animation(frames, path, *, fps, preset=None, alpha=None):
    path = Path(path)
    ims = [Image.fromarray(f) for f in frames]
    fmt = {".gif": "GIF", ".webp": "WEBP", ".png": "PNG", ".apng": "PNG"}.get(path.suffix.lower(), "GIF")
    ims[0].save(path, format=fmt, save_all=True, append_images=ims[1:], duration=int(1000 / fps), loop=0)
    return path


def fake_stages(*, delay=0.0) -> Stages:
    return Stages(load_image=load_image, detect=detect, align=align,
                  stylizer=lambda weights, device: FakeStylizer(weights, device, delay=delay),
                  animate=make_animate(delay), paste_back=paste_back, alpha_matte=alpha_matte,
                  save_animation=save_animation, expressions=lambda: ["happy", "sad", "surprised"])


def fake_pipeline(*, delay=0.0) -> Pipeline:
    return Pipeline(stages=fake_stages(delay=delay))


def write_photos(folder: Path, n: int, *, bad: tuple[int, ...] = (), size: int = 24) -> list[Path]:
    """n small photos; indices in ``bad`` are corrupt files (not images)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        p = folder / f"p{i:02d}.png"
        if i in bad:
            p.write_bytes(b"not an image at all")
        else:
            Image.fromarray(rng.integers(40, 255, (size, size, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


if __name__ == "__main__":  # the SIGKILL test's batch process
    from ui.batch import run_batch
    from ui.pipeline import RenderOptions

    in_dir, out_dir, workers, delay = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    opts = RenderOptions(styles=("alpha", "beta"), expressions=("happy", "sad"), frames=4, size=32)
    s = run_batch(in_dir, out_dir, options=opts, workers=workers, pipeline=fake_pipeline(delay=delay), progress=False)
    print(f"ok={s.ok} failed={s.failed} skipped={s.skipped}")
