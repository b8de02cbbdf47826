"""The render/pack/batch commands end to end through the CLI, on the stand-in stages."""
import json
import zipfile

import pytest
from PIL import Image
from pipeline_fakes import fake_pipeline, write_photos

import ui.pipeline
from ui.cli import main


@pytest.fixture
def fake_default(monkeypatch):
    p = fake_pipeline()
    monkeypatch.setattr(ui.pipeline, "_default", p)
    return p


def test_render_writes_the_file(fake_default, tmp_path, capsys):
    photo = write_photos(tmp_path, 1)[0]
    out = tmp_path / "me.gif"
    assert main(["render", str(photo), "--style", "beta", "--expression", "sad", "--frames", "5", "--size", "48",
                 "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    with Image.open(out) as im:
        assert im.n_frames == 5 and im.size == (48, 48)


def test_render_reports_bad_input_in_one_line(fake_default, tmp_path, capsys):
    bad = tmp_path / "x.jpg"
    bad.write_bytes(b"nope")
    assert main(["render", str(bad), "-o", str(tmp_path / "o.gif")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("emoget render: cannot read") and "\n" not in err
    assert main(["render", str(bad), "--strength", "3", "-o", str(tmp_path / "o.gif")]) == 2
    assert "strength must be between" in capsys.readouterr().err


def test_pack_zip_has_every_animation_sheet_and_preset_files(fake_default, tmp_path, monkeypatch):
    photo = write_photos(tmp_path, 1)[0]
    monkeypatch.setattr(ui.pipeline.Pipeline, "extension", staticmethod(lambda options: "gif"))
    out = tmp_path / "pack.zip"
    assert main(["pack", str(photo), "--styles", "alpha,gamma", "--frames", "3",
                 "--size", "32", "-o", str(out)]) == 0
    names = set(zipfile.ZipFile(out).namelist())
    gifs = {f"gif/{s}_{e}.gif" for s in ("alpha", "gamma") for e in ("happy", "sad", "surprised")}
    assert gifs <= names and "contact_sheet.png" in names and "ATTRIBUTION.txt" in names
    assert {f"discord/{s}_{e}.gif" for s in ("alpha", "gamma") for e in ("happy", "sad", "surprised")} <= names
    with zipfile.ZipFile(out) as z, z.open("contact_sheet.png") as f:
        w, h = Image.open(f).size
    assert w > h  # 2 styles (rows) x 3 expressions (columns), plus the row labels


def test_batch_command_dry_run_then_run(fake_default, tmp_path, capsys):
    write_photos(tmp_path / "in", 2, bad=(1,))
    args = ["batch", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--styles", "alpha",
            "--expressions", "happy,sad", "--frames", "3", "--size", "32", "--no-progress"]
    assert main([*args, "--dry-run"]) == 0
    assert "4 outputs planned" in capsys.readouterr().out
    assert main(args) == 1  # one photo failed: the exit code says so, the rest is done
    assert "2 rendered, 2 failed" in capsys.readouterr().out
    rows = [json.loads(x) for x in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 4
