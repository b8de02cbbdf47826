"""``emoget animate`` end to end: landmarks from a file, driving videos, transparent stills, bad input."""
import json

import numpy as np
import pytest
from PIL import Image

import landmarks
from landmarks.io import save_image
from ui.cli import main
from video_gen.export import inspect


def _frames(path) -> list[np.ndarray]:
    with Image.open(path) as im:
        out = []
        for k in range(im.n_frames):
            im.seek(k)
            out.append(np.asarray(im.convert("RGBA")))
    return out


def _assert_animated_gif(path, n_frames, size):
    info = inspect(path)
    assert info.format == "gif" and info.n_frames == n_frames and info.size == size and info.loop == 0
    frames = _frames(path)
    assert max(np.abs(f.astype(int) - frames[0]).max() for f in frames[1:]) > 0  # it moves
    return info


@pytest.fixture
def no_detector(monkeypatch):
    """Landmarks must come from the file: detecting the still's fails the test (``emoget landmarks`` still works)."""
    monkeypatch.setattr(landmarks, "detect", lambda *a, **k: pytest.fail("landmarks detected instead of read"))


def test_landmarks_json_output_feeds_animate(samples_dir, tmp_path, capsys, no_detector):
    photo = samples_dir / "grace_hopper.jpg"
    assert main(["landmarks", str(photo), "--json"]) == 0
    lm = tmp_path / "hopper.json"
    lm.write_text(capsys.readouterr().out)
    out = tmp_path / "hopper.gif"
    assert main(["animate", str(photo), "--landmarks", str(lm), "--frames", "6", "--seed", "0", "-o", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    _assert_animated_gif(out, 6, (512, 600))


def test_points_object_form(samples_dir, tmp_path, no_detector):  # the bare list form: see test_motion.py
    photo = samples_dir / "grace_hopper.jpg"
    pts = landmarks.get_detector().find(landmarks.load_image(photo))[0].points.tolist()
    lm = tmp_path / "lm.json"
    lm.write_text(json.dumps({"points": pts}))
    out = tmp_path / "a.gif"
    assert main(["animate", str(photo), "--landmarks", str(lm), "--frames", "4", "--prior", "--seed", "1",
                 "-o", str(out)]) == 0
    _assert_animated_gif(out, 4, (512, 600))


BAD_FILES = {
    "missing": (None, "does not exist"),
    "not json": ("{'landmarks': [1, 2", "not valid JSON"),
    "wrong key": (json.dumps({"faces": 1}), 'no "landmarks" or "points" key'),
    "67 points": (json.dumps([[200.0, 300.0]] * 67), "must hold 68 finite (x, y) points, got 67x2"),
    "ragged": (json.dumps({"landmarks": [[1, 2]] * 67 + [[1]]}), "must hold 68 finite"),
    "not numbers": (json.dumps({"points": "nose"}), "must hold 68 finite"),
    "another image": (json.dumps([[5000.0 + i, 4000.0] for i in range(68)]), "outside the 512x600 still"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_landmark_files_fail_in_one_line(samples_dir, tmp_path, capsys, case, no_detector):
    text, message = BAD_FILES[case]
    lm = tmp_path / "lm.json"
    if text is not None:
        lm.write_text(text)
    out = tmp_path / "a.gif"
    assert main(["animate", str(samples_dir / "grace_hopper.jpg"), "--landmarks", str(lm), "-o", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith("emoget animate: ") and message in captured.err
    assert "emoget landmarks STILL --json" in captured.err  # says how to make a good one
    assert not out.exists()


def test_drive_with_a_video_file(samples_dir, tmp_path, capsys):
    import imageio.v2 as imageio

    photo = landmarks.load_image(samples_dir / "grace_hopper.jpg")
    clip = [photo[80 + 3 * k:400 + 3 * k, 100 - 2 * k:420 - 2 * k] for k in range(8)]  # the head drifts
    video = tmp_path / "me.mp4"
    imageio.mimwrite(video, clip, fps=10, macro_block_size=1)
    still = samples_dir / "grace_hopper.jpg"

    out = tmp_path / "driven.gif"
    assert main(["animate", str(still), "--drive", str(video), "-o", str(out)]) == 0
    info = _assert_animated_gif(out, 8, (512, 600))  # the clip's own frames and timing
    assert info.total_ms == 800

    out = tmp_path / "resampled.gif"
    assert main(["animate", str(still), "--drive", str(video), "--frames", "5", "--fps", "25", "-o", str(out)]) == 0
    info = _assert_animated_gif(out, 5, (512, 600))
    assert info.total_ms == 200
    assert "5 frames" in capsys.readouterr().out


def test_drive_refuses_impossible_timing(samples_dir, tmp_path, capsys):
    still = str(samples_dir / "grace_hopper.jpg")
    assert main(["animate", still, "--drive", str(tmp_path / "none.mp4"), "--fps", "0", "-o", str(tmp_path / "a.gif")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fps must be above 0" in err


def _transparent_still(samples_dir, tmp_path):
    """The sample photo cut to an ellipse around the face, transparent outside: a PNG path."""
    photo = landmarks.load_image(samples_dir / "grace_hopper.jpg")
    yy, xx = np.mgrid[0:600, 0:512]
    alpha = (((xx - 266) / 190) ** 2 + ((yy - 240) / 230) ** 2 < 1).astype(np.uint8) * 255
    return save_image(np.dstack([photo, alpha]), tmp_path / "cut.png")


@pytest.mark.parametrize("suffix", [".gif", ".png", ".webp"])
def test_transparent_still_stays_transparent(samples_dir, tmp_path, suffix):
    still = _transparent_still(samples_dir, tmp_path)
    out = tmp_path / f"cut{suffix}"
    assert main(["animate", str(still), "--frames", "4", "--seed", "0", "-o", str(out)]) == 0
    assert inspect(out).has_alpha
    for f in _frames(out):
        assert f[5, 5, 3] == 0 and f[590, 5, 3] == 0  # outside the ellipse
        assert f[240, 266, 3] == 255  # the face


def test_opaque_still_gives_an_opaque_animation(samples_dir, tmp_path):
    photo = landmarks.load_image(samples_dir / "grace_hopper.jpg")
    still = save_image(np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)]), tmp_path / "opaque.png")
    out = tmp_path / "opaque.gif"
    assert main(["animate", str(still), "--frames", "3", "--seed", "0", "-o", str(out)]) == 0
    assert not inspect(out).has_alpha
