"""Resumable batch: manifest, skip/redo rules, bad photos, workers, and a SIGKILL mid-way."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image
from pipeline_fakes import fake_pipeline, write_photos

from ui.batch import MANIFEST, Manifest, plan, run_batch
from ui.pipeline import RenderOptions

OPTS = RenderOptions(styles=("alpha", "beta"), expressions=("happy", "sad"), frames=4, size=32)
FAKES = Path(__file__).with_name("pipeline_fakes.py")


def rows_of(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / MANIFEST).read_text().splitlines()]


def check_complete(in_dir: Path, out: Path, *, bad: set[str] = frozenset()):
    """Every job has exactly one manifest row; every ok output exists once, is a whole GIF; no temporaries."""
    jobs = plan(in_dir, styles=OPTS.styles, expressions=OPTS.expressions, ext="gif")
    rows = rows_of(out)
    assert len(rows) == len(jobs) == len({(r["input"], r["style"], r["expression"]) for r in rows})
    for r in rows:
        if r["input"] in bad:
            assert r["status"] == "error" and r["error"]
            assert not (out / r["output"]).exists()
        else:
            assert r["status"] == "ok" and r["error"] is None and r["seconds"] >= 0, r
            with Image.open(out / r["output"]) as im:
                assert im.format == "GIF" and im.n_frames == OPTS.frames
                im.seek(im.n_frames - 1)
                im.load()  # decodes to the last frame: a truncated file raises here
    files = sorted(p.name for p in out.rglob("*") if p.is_file() and p.name != MANIFEST)
    assert len(files) == len(rows) - sum(r["status"] == "error" for r in rows)
    assert not [f for f in files if f.startswith(".")]


def test_batch_renders_all_and_survives_a_bad_photo(tmp_path):
    in_dir, out = tmp_path / "in", tmp_path / "out"
    write_photos(in_dir, 3, bad=(1,))
    (in_dir / "notes.txt").write_text("ignored: not a photo")
    s = run_batch(in_dir, out, options=OPTS, pipeline=fake_pipeline(), progress=False)
    assert (s.jobs, s.ok, s.failed, s.skipped) == (12, 8, 4, 0)
    check_complete(in_dir, out, bad={"p01.png"})
    assert "cannot read" in next(r for r in rows_of(out) if r["status"] == "error")["error"]


def test_rerun_skips_done_and_redoes_half_written(tmp_path):
    in_dir, out = tmp_path / "in", tmp_path / "out"
    write_photos(in_dir, 2)
    run_batch(in_dir, out, options=OPTS, pipeline=fake_pipeline(), progress=False)
    first = rows_of(out)
    # an interrupted run leaves: a temporary, a file without a row, a torn manifest line
    (out / ".p00-png_alpha_happy.abc.part.gif").write_bytes(b"GIF89a half")
    lost = out / first[-1]["output"]
    Manifest(out).rewrite(first[:-1])
    with open(out / MANIFEST, "a") as f:
        f.write('{"input": "p01.png", "sty')
    s = run_batch(in_dir, out, options=OPTS, pipeline=fake_pipeline(), progress=False)
    assert (s.skipped, s.ok, s.failed) == (7, 1, 0)
    assert lost.exists()
    check_complete(in_dir, out)
    # nothing left to do
    s = run_batch(in_dir, out, options=OPTS, pipeline=fake_pipeline(), progress=False)
    assert (s.skipped, s.ok) == (8, 0)


def test_dry_run_lists_and_writes_nothing(tmp_path):
    in_dir, out = tmp_path / "in", tmp_path / "out"
    write_photos(in_dir, 2)
    lines = []
    s = run_batch(in_dir, out, options=OPTS, pipeline=fake_pipeline(), dry_run=True, echo=lines.append)
    assert s.jobs == 8 and len(lines) == 8 and all(line.startswith("todo") for line in lines)
    assert "p00-png_alpha_happy.gif" in lines[0]
    assert not out.exists()


def test_failed_jobs_are_retried_only_when_asked(tmp_path):
    in_dir, out = tmp_path / "in", tmp_path / "out"
    write_photos(in_dir, 2, bad=(0,))
    run_batch(in_dir, out, options=OPTS, pipeline=fake_pipeline(), progress=False)
    write_photos(in_dir, 2)  # the bad photo gets fixed
    s = run_batch(in_dir, out, options=OPTS, pipeline=fake_pipeline(), progress=False)
    assert (s.ok, s.skipped) == (0, 8)
    s = run_batch(in_dir, out, options=OPTS, pipeline=fake_pipeline(), progress=False, retry_errors=True)
    assert s.ok == 4
    check_complete(in_dir, out)


def test_two_workers_give_the_same_outputs(tmp_path):
    in_dir = tmp_path / "in"
    write_photos(in_dir, 4, bad=(2,))
    s1 = run_batch(in_dir, tmp_path / "o1", options=OPTS, pipeline=fake_pipeline(), progress=False)
    s2 = run_batch(in_dir, tmp_path / "o2", options=OPTS, pipeline=fake_pipeline(), progress=False, workers=2)
    assert (s2.ok, s2.failed) == (s1.ok, s1.failed) == (12, 4)
    check_complete(in_dir, tmp_path / "o2", bad={"p02.png"})
    for r in rows_of(tmp_path / "o1"):
        if r["status"] == "ok":
            assert (tmp_path / "o1" / r["output"]).read_bytes() == (tmp_path / "o2" / r["output"]).read_bytes()


@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_mid_batch_then_resume(tmp_path, workers):
    in_dir, out = tmp_path / "in", tmp_path / "out"
    write_photos(in_dir, 6, bad=(4,))
    cmd = [sys.executable, str(FAKES), str(in_dir), str(out), str(workers), "0.05"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        manifest = out / MANIFEST
        if manifest.exists() and manifest.read_text().count("\n") >= 5:
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the batch and its workers, with no chance to clean up
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    n_before = len(Manifest(out).load())
    assert 5 <= n_before < 24, "the kill should land mid-way"
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    ok, failed, skipped = (int(x.split("=")[1]) for x in done.stdout.split())
    assert ok + failed + skipped == 24 and skipped >= n_before - 1 and ok >= 1
    check_complete(in_dir, out, bad={"p04.png"})
