import numpy as np
import pytest
import torch
from vg_helpers import face_points, textured

from video_gen.animate import animate, resample_loop
from video_gen.expressions import EXPRESSIONS, list_expressions
from video_gen.motion import (
    MotionConfig,
    MotionGenerator,
    generate,
    load_motion_model,
    save_motion_model,
)
from video_gen.prior import sample_dataset, sample_sequence
from video_gen.train_motion import TrainConfig, train

TINY = MotionConfig(class_names=tuple(EXPRESSIONS), frames=8, hidden=16, d_hidden=16, embed_dim=4)


def test_registry_lists_every_required_expression():
    names = [n for n, _ in list_expressions()]
    for e in ["neutral", "happy", "sad", "angry", "surprised", "fearful", "disgusted", "wink"]:
        assert e in names


@pytest.mark.parametrize("name", list(EXPRESSIONS))
def test_prior_sequences_loop_and_move(name):
    d = sample_sequence(name, frames=16, rng=0)
    assert d.shape == (17, 68, 2)
    assert np.abs(d[0]).max() < 1e-6 and np.abs(d[-1]).max() < 1e-6
    assert np.abs(d).max() > 0.02


def test_generator_shapes_determinism_and_closed_loop():
    torch.manual_seed(0)
    G = MotionGenerator(TINY).eval()
    face = face_points(64) / 16.0
    a = generate(G, face, "happy", seed=3, n=2)
    b = generate(G, face, "happy", seed=3, n=2)
    c = generate(G, face, "happy", seed=4, n=2)
    assert a.shape == (2, 9, 68, 2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.abs(a[:, 0]).max() == 0 and np.abs(a[:, -1]).max() < 1e-6


def test_one_training_step_and_save_load(tmp_path):
    data = sample_dataset(16, frames=8, rng=0)
    G, log = train(TrainConfig(steps=1, batch=8, frames=8), arch=TINY, data=data)
    assert log["history"] and np.isfinite(log["history"][0]["d"])
    path = save_motion_model(G, tmp_path / "m.safetensors")
    G2 = load_motion_model(path)
    face = face_points(64) / 16.0
    assert np.array_equal(generate(G, face, "sad", seed=1), generate(G2, face, "sad", seed=1))


def test_resample_loop_keeps_the_loop_closed():
    d = sample_sequence("happy", frames=16, rng=1)
    r = resample_loop(d, 24)
    assert r.shape == (24, 68, 2) and np.abs(r[0]).max() < 1e-6


def test_animate_with_the_prior_is_seeded_and_starts_on_the_still():
    img, pts = textured(64), face_points(64)
    a = animate(img, pts, expression="surprised", frames=6, fps=6, seed=2, source="prior")
    b = animate(img, pts, expression="surprised", frames=6, fps=6, seed=2, source="prior")
    assert len(a) == 6 and a.points.shape == (6, 68, 2)
    assert np.array_equal(a.frames[0], img)
    assert all(np.array_equal(x, y) for x, y in zip(a.frames, b.frames))


@pytest.mark.weights
def test_shipped_model_animates_every_expression():
    img, pts = textured(64), face_points(64)
    G = load_motion_model()
    for name in EXPRESSIONS:
        anim = animate(img, pts, expression=name, frames=4, fps=8, seed=0, model=G)
        assert len(anim) == 4


def test_cli_animate_with_landmarks_and_prior(tmp_path):
    import json

    import imageio.v3 as iio

    from ui.cli import main

    iio.imwrite(tmp_path / "s.png", textured(64))
    (tmp_path / "l.json").write_text(json.dumps(face_points(64).tolist()))
    out = tmp_path / "o.gif"
    assert main(["animate", str(tmp_path / "s.png"), "--landmarks", str(tmp_path / "l.json"), "--expression", "wink",
                 "--frames", "4", "--prior", "--seed", "0", "-o", str(out)]) == 0
    assert out.exists()


def test_mode_seeking_spreads_the_takes_of_one_face():
    data = sample_dataset(64, frames=8, rng=0)
    face = face_points(64) / 16.0

    def spread(ms_weight):
        G, _ = train(TrainConfig(steps=40, batch=16, frames=8, ms_weight=ms_weight), arch=TINY, data=data)
        takes = generate(G, face, "happy", seed=5, n=6)
        return float(np.abs(takes[:, None] - takes[None]).mean())

    assert spread(5.0) > 1.5 * spread(0.0)
