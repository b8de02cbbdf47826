"""The pipeline's own logic, with small stand-in stages (see pipeline_fakes.py)."""
import argparse

import numpy as np
import pytest
from PIL import Image
from pipeline_fakes import FakeStylizer, fake_pipeline, write_photos

from landmarks.errors import EmogetError
from ui.pipeline import (
    STAGES,
    LatentCache,
    OptionsError,
    RenderOptions,
    add_option_arguments,
    atomic_write,
    image_digest,
    options_from_args,
)


@pytest.fixture
def photo(tmp_path):
    return write_photos(tmp_path / "in", 1)[0]


def test_options_normalise_and_validate():
    o = RenderOptions(styles="alpha", expressions=("happy", "sad", "happy"))
    assert o.styles == ("alpha",) and o.expressions == ("happy", "sad")
    for bad in ({"strength": 1.5}, {"intensity": -0.1}, {"frames": 1}, {"size": 8}, {"format": "bmp"},
                {"expressions": ()}, {"fps": 0}):
        with pytest.raises(OptionsError):
            RenderOptions(**bad)
    assert RenderOptions().stylizer == "vector"
    assert RenderOptions(weights="toon.pt").stylizer == "gan", "generator weights choose the GAN stylizer"


def test_render_one_clip_with_timings_and_progress(photo, tmp_path):
    events = []
    p = fake_pipeline()
    out = tmp_path / "out.gif"
    r = p.render(photo, options=RenderOptions(styles="beta", expressions="sad", frames=6, size=40),
                 output=out, progress=lambda s, f: events.append((s, f)))
    assert r.frames.shape == (6, 40, 40, 3) and r.frames.dtype == np.uint8
    assert r.still.shape == (40, 40, 3) and r.landmarks.shape == (68, 2)
    assert r.files == [out] and Image.open(out).n_frames == 6
    assert set(r.timings) == set(STAGES) and all(v >= 0 for v in r.timings.values())
    assert not r.cached
    stages_seen = [s for s, _ in events]
    assert stages_seen.index("detect") < stages_seen.index("invert") < stages_seen.index("animate") \
        < stages_seen.index("export")
    assert all(0.0 <= f <= 1.0 for _, f in events)
    for stage in STAGES:
        assert (stage, 1.0) in events, stage


def test_second_style_and_expression_skip_inversion(photo):
    p = fake_pipeline()
    FakeStylizer.inversions = 0
    r1 = p.render(photo, options=RenderOptions(styles="alpha", expressions="happy", frames=3, size=32))
    r2 = p.render(photo, options=RenderOptions(styles="gamma", expressions="sad", frames=3, size=64))
    assert FakeStylizer.inversions == 1 and r2.cached and not r1.cached
    assert r2.timings["invert"] == 0.0 and r2.timings["detect"] == 0.0
    # a different seed changes the inversion, so it is not served from the cache
    p.render(photo, options=RenderOptions(styles="alpha", frames=3, size=32, seed=5))
    assert FakeStylizer.inversions == 2
    # the cache is keyed by pixels: other pixels, another inversion
    img = np.asarray(Image.open(photo).convert("RGB")).copy()
    img[0, 0] ^= 1
    p.render(img, options=RenderOptions(styles="alpha", frames=3, size=32))
    assert FakeStylizer.inversions == 3
    # a per-user cache keeps users apart
    mine = LatentCache()
    r = p.render(photo, options=RenderOptions(frames=3, size=32), cache=mine)
    assert not r.cached and len(mine) == 2 and FakeStylizer.inversions == 4  # a face and a latent


def test_many_styles_and_expressions_to_a_folder(photo, tmp_path):
    p = fake_pipeline()
    opts = RenderOptions(styles=("alpha", "beta"), expressions=("happy", "sad", "surprised"), frames=3, size=32)
    r = p.render(photo, options=opts, output=tmp_path / "o")
    assert [(c.style, c.expression) for c in r.clips] == [(s, e) for s in opts.styles for e in opts.expressions]
    assert sorted(f.name for f in r.files) == sorted(f"p00_{s}_{e}.gif" for s in opts.styles for e in opts.expressions)
    assert not np.array_equal(r.clip("alpha", "happy").frames, r.clip("beta", "happy").frames)
    with pytest.raises(OptionsError, match="folder"):
        p.render(photo, options=opts, output=tmp_path / "one.gif")


def test_default_style_unknown_style_and_array_input(photo):
    p = fake_pipeline()
    arr = np.asarray(Image.open(photo).convert("RGB"))
    r = p.render(arr, options=RenderOptions(frames=2, size=32))
    assert r.clips[0].style == "alpha"
    with pytest.raises(OptionsError, match="unknown style 'nope'"):
        p.render(arr, options=RenderOptions(styles="nope", frames=2, size=32))
    with pytest.raises(OptionsError):
        p.render(arr[..., 0], options=RenderOptions(frames=2, size=32))


def test_paste_back_keeps_photo_size_and_transparent_gives_alpha(tmp_path):
    photo = write_photos(tmp_path / "in", 1, size=48)[0]
    p = fake_pipeline()
    r = p.render(photo, options=RenderOptions(frames=3, size=32, paste_back=True, transparent=True))
    assert r.frames.shape == (3, 48, 48, 3)
    alpha = r.clips[0].alpha
    assert alpha.shape == (3, 48, 48) and alpha.dtype == np.uint8 and alpha.max() == 255 and alpha.min() == 0


def test_bad_photo_raises_friendly_error(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\x00" * 10)
    with pytest.raises(EmogetError, match="cannot read"):
        fake_pipeline().render(bad, options=RenderOptions(frames=2, size=32))
    black = tmp_path / "black.png"
    Image.new("RGB", (20, 20)).save(black)
    with pytest.raises(EmogetError, match="no face"):
        fake_pipeline().render(black, options=RenderOptions(frames=2, size=32))


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "x.gif"

    def boom(tmp):
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(target, boom)
    assert list(tmp_path.iterdir()) == []
    atomic_write(target, lambda tmp: tmp.write_bytes(b"whole"))
    assert target.read_bytes() == b"whole" and list(tmp_path.iterdir()) == [target]


def test_image_digest_depends_on_pixels_and_shape():
    a = np.zeros((4, 6, 3), np.uint8)
    assert image_digest(a) == image_digest(a.copy())
    assert image_digest(a) != image_digest(a.reshape(6, 4, 3))
    b = a.copy()
    b[1, 1, 1] = 1
    assert image_digest(a) != image_digest(b)


def test_cache_is_bounded_lru():
    c = LatentCache(max_items=2)
    c.put(("a",), 1)
    c.put(("b",), 2)
    assert c.get(("a",)) == 1
    c.put(("c",), 3)
    assert c.get(("b",)) is None and c.get(("a",)) == 1 and len(c) == 2


def test_cli_flags_are_generated_from_the_options():
    parser = argparse.ArgumentParser()
    add_option_arguments(parser)
    args = parser.parse_args(["--style", "a,b", "--expressions", "happy", "--strength", "0.5", "--frames", "8",
                              "--paste-back", "--face-index", "1", "--weights", "my.pt"])
    o = options_from_args(args)
    assert o.styles == ("a", "b") and o.expressions == ("happy",) and o.strength == 0.5 and o.frames == 8
    assert o.paste_back and o.face_index == 1 and o.weights == "my.pt"
    assert options_from_args(parser.parse_args([])) == RenderOptions()
