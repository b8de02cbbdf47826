import json

import numpy as np

from landmarks import load_image
from ui.cli import main


def test_json_output(samples_dir, capsys):
    assert main(["landmarks", str(samples_dir / "grace_hopper.jpg"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"landmarks", "box", "score", "backend", "faces"}
    assert np.asarray(out["landmarks"]).shape == (68, 2)
    assert len(out["box"]) == 4 and out["faces"] == 1 and out["backend"] == "mediapipe" and 0 < out["score"] <= 1


def test_crop_and_overlay_written(samples_dir, tmp_path, capsys):
    crop, overlay = tmp_path / "crop.png", tmp_path / "o" / "overlay.jpg"
    rc = main(["landmarks", str(samples_dir / "astronaut.png"), "-o", str(crop), "--size", "128", "--draw", str(overlay)])
    assert rc == 0
    assert load_image(crop).shape == (128, 128, 3)
    drawn = load_image(overlay)
    assert drawn.shape == (512, 512, 3)
    assert np.abs(drawn.astype(int) - load_image(samples_dir / "astronaut.png")).mean() > 0.2
    text = capsys.readouterr().out
    assert "1 face(s)" in text and "crop.png" in text


def test_face_index_and_several_faces(two_faces, tmp_path, capsys):
    from landmarks.io import save_image

    path = save_image(two_faces, tmp_path / "two.png")
    assert main(["landmarks", str(path), "--json", "--face-index", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["faces"] == 2 and out["box"][0] > 500
    assert main(["landmarks", str(path), "--face-index", "7"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "face index 7" in err


def test_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "notes.png"
    bad.write_text("not a photo")
    assert main(["landmarks", str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and "notes.png" in captured.err
    blank = tmp_path / "blank.png"
    from landmarks.io import save_image

    save_image(np.full((100, 100, 3), 200, np.uint8), blank)
    assert main(["landmarks", str(blank), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "no face" in captured.err and captured.err.count("\n") == 1


def test_crop_size_out_of_range_fails_in_one_line(samples_dir, tmp_path, capsys):
    crop = tmp_path / "crop.png"
    for size in ("2000", "10"):
        assert main(["landmarks", str(samples_dir / "grace_hopper.jpg"), "--size", size, "-o", str(crop)]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.count("\n") == 1
        assert captured.err.startswith("emoget landmarks: --size must be between 64 and 1024") and size in captured.err
    assert not crop.exists()
