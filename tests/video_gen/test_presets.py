"""Sticker presets on content that does not compress: every platform's published limits must still hold.

48 frames of a 256 px photo that moves and carries sensor noise (so no two frames share pixels) are
far over every byte cap at full quality, so each preset has to drop colours, quality or frames to
fit — and must do so without leaving the pixel size the platform requires.
"""
import subprocess
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from video_gen.export import inspect, save_animation
from video_gen.presets import PRESETS

# The platforms' own numbers (see the sources in video_gen/presets.py), written out again here so a
# preset that drifts from them fails.
PUBLISHED = {
    "discord": {"suffix": ".gif", "size": (128, 128), "max_bytes": 256_000},
    "slack": {"suffix": ".gif", "size": (128, 128), "max_bytes": 128_000},
    "line": {"suffix": ".png", "within": (320, 270), "min_side": 270, "frames": (5, 20), "max_seconds": 4.0,
             "max_bytes": 300_000},
    "telegram": {"suffix": ".webm", "side": 512, "max_seconds": 3.0, "max_fps": 30.0, "max_bytes": 256_000},
    "kakao": {"suffix": ".gif", "size": (360, 360), "frames": (1, 24), "max_bytes": 2_000_000},
}


@pytest.fixture(scope="module")
def noisy_clip():
    """48 frames ``uint8 [256,256,3]``: a photo drifting in a circle under heavy noise, and a round alpha."""
    import landmarks

    photo = landmarks.load_image(Path(__file__).resolve().parents[2] / "samples" / "grace_hopper.jpg")
    big = cv2.resize(photo, (288, 288), interpolation=cv2.INTER_AREA).astype(np.int16)
    rng = np.random.default_rng(0)
    frames = []
    for k in range(48):
        dx, dy = (round(8 * f(2 * np.pi * k / 48)) for f in (np.sin, np.cos))
        crop = big[16 + dy:272 + dy, 16 + dx:272 + dx] + rng.normal(0, 16, (256, 256, 3)).astype(np.int16)
        frames.append(np.clip(crop, 0, 255).astype(np.uint8))
    yy, xx = np.mgrid[0:256, 0:256]
    alpha = ((xx - 128) ** 2 + (yy - 128) ** 2 < 120 ** 2).astype(np.float32)
    return frames, alpha


def test_every_platform_is_covered():
    assert set(PUBLISHED) == set(PRESETS)


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_preset_meets_published_limits_on_incompressible_content(noisy_clip, tmp_path, name):
    frames, alpha = noisy_clip
    want = PUBLISHED[name]
    if want["suffix"] != ".webm":  # the content really needs fitting (a full VP9 encode would only slow this down)
        raw = save_animation(frames, tmp_path / f"raw{want['suffix']}", fps=12, alpha=alpha)
        assert raw.stat().st_size > want["max_bytes"]

    out = save_animation(frames, tmp_path / f"sticker{want['suffix']}", fps=12, alpha=alpha, preset=name)
    info = inspect(out)
    assert info.bytes <= want["max_bytes"]
    w, h = info.size
    if "size" in want:
        assert (w, h) == want["size"]
    if "within" in want:
        assert w <= want["within"][0] and h <= want["within"][1] and max(w, h) >= want["min_side"]
    if "frames" in want:
        lo, hi = want["frames"]
        assert lo <= info.n_frames <= hi
    if name == "line":
        assert info.format == "apng" and info.n_frames > 1 and info.has_alpha
        assert 1 <= info.loop <= 4
        one_loop = info.total_ms / 1000
        assert one_loop == round(one_loop) and one_loop * info.loop <= want["max_seconds"]
        with Image.open(out) as im:  # the background stays transparent on a later frame, the face opaque
            im.seek(info.n_frames - 1)
            rgba = np.asarray(im.convert("RGBA"))
        assert rgba[2, 2, 3] == 0 and rgba[h // 2, w // 2, 3] == 255
    if name == "telegram":
        assert info.codec == "vp9"
        assert max(w, h) == want["side"] and min(w, h) <= want["side"]
        assert info.total_ms / 1000 <= want["max_seconds"] + 1e-6
        assert 1000 * info.n_frames / info.total_ms <= want["max_fps"]
        probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(out)],
                               check=False, capture_output=True, text=True)
        assert "Video: vp9" in probe.stderr and "Audio:" not in probe.stderr
    if info.format == "gif":
        assert info.loop == 0 and info.global_palette and info.has_alpha
