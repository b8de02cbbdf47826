import numpy as np
import pytest

from video_gen.export import ExportError, frame_delays, inspect, save_animation
from video_gen.presets import PRESETS


def _frames(t=12, size=48):
    yy, xx = np.mgrid[0:size, 0:size]
    return [np.dstack([(xx * 5 + k * 20) % 256, yy * 5, np.full_like(xx, k * 15)]).astype(np.uint8) for k in range(t)]


def _alpha(size=48):
    yy, xx = np.mgrid[0:size, 0:size]
    return ((xx - size / 2) ** 2 + (yy - size / 2) ** 2 < (0.4 * size) ** 2).astype(np.float32)


def test_frame_delays_are_exact_on_the_grid():
    d = frame_delays(12, 12, grid_ms=10)
    assert sum(d) == 1000 and set(d) <= {80, 90}
    assert sum(frame_delays(7, 9)) == round(7 * 1000 / 9)


@pytest.mark.parametrize("suffix", [".gif", ".webp", ".png", ".mp4", ".webm"])
@pytest.mark.parametrize("transparent", [False, True])
def test_round_trip(tmp_path, suffix, transparent):
    frames = _frames()
    p = save_animation(frames, tmp_path / f"a{suffix}", fps=12, alpha=_alpha() if transparent else None)
    info = inspect(p)
    assert info.n_frames == 12 and info.size == (48, 48)
    assert abs(info.total_ms - 1000) <= 12
    if suffix in (".gif", ".webp", ".png"):
        assert info.loop == 0
    if suffix == ".gif":
        assert info.global_palette  # one palette shared by every frame
        assert info.has_alpha == transparent


def test_unknown_suffix_is_refused(tmp_path):
    with pytest.raises(ExportError):
        save_animation(_frames(2), tmp_path / "a.bmp", fps=10)


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_meet_their_limits(tmp_path, name):
    p = PRESETS[name]
    out = save_animation(_frames(24), tmp_path / f"s{p.format}", fps=12, alpha=_alpha(), preset=name)
    info = inspect(out)
    assert info.bytes <= p.max_bytes
    w, h = info.size
    assert w <= p.box[0] and h <= p.box[1]
    if p.min_side:
        assert max(w, h) >= p.min_side
    if p.max_frames:
        assert p.min_frames <= info.n_frames <= p.max_frames
    if p.max_seconds and p.max_loops:
        assert info.total_ms / 1000 * max(1, info.loop) <= p.max_seconds + 1e-6
    elif p.max_seconds:
        assert info.total_ms / 1000 <= p.max_seconds + 0.05


def test_preset_refuses_a_format_the_platform_does_not_take(tmp_path):
    with pytest.raises(ExportError, match="takes"):
        save_animation(_frames(4), tmp_path / "x.mp4", fps=12, preset="telegram")
