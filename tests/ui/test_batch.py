"""Resumable batch: manifest, skip/redo rules, bad photos, workers, and a SIGKILL mid-way."""
import concurrent.futures as cf
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image
from pipeline_fakes import fake_pipeline, write_photos

import ui.batch
from ui.batch import (
    MANIFEST,
    THREAD_VARIABLES,
    Manifest,
    child_threads,
    plan,
    remove_partials,
    run_batch,
    worker_threads,
)
from ui.pipeline import OptionsError, Pipeline, RenderOptions, atomic_write, is_partial

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
    (out / ".p00-png_alpha_happy.k3x9_q2a.part.gif").write_bytes(b"GIF89a half")
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


def test_only_interrupted_writes_count_as_temporaries(tmp_path):
    names = []
    atomic_write(tmp_path / "a.b_alpha_happy.gif", lambda tmp: names.append(tmp.name) or tmp.write_bytes(b"x"))
    atomic_write(tmp_path / "manifest.jsonl", lambda tmp: names.append(tmp.name) or tmp.write_text("{}"))
    assert all(is_partial(Path(n)) for n in names), names
    for user_file in (".participants.gif", ".part.gif", ".notes.part", ".me.abc.part.gif", ".me.ABCDEFGH.part.gif",
                      "p00.k3x9_q2a.part.gif", ".me.k3x9_q2a.partial.gif"):
        assert not is_partial(Path(user_file)), user_file
    left = tmp_path / "sub" / names[0]
    left.parent.mkdir()
    left.write_bytes(b"GIF89a half")
    keep = [tmp_path / ".participants.gif", tmp_path / "sub" / ".party.part"]
    for f in keep:
        f.write_bytes(b"the user's own")
    assert remove_partials(tmp_path) == 1
    assert not left.exists() and all(f.exists() for f in keep)


def test_style_names_come_from_the_weights_config_without_loading(tmp_path):
    weights = tmp_path / "g.safetensors"
    weights.write_bytes(b"not read: listing styles loads no model")
    weights.with_suffix(".json").write_text(json.dumps({"format": "emoget-stylegan2/1",
                                                        "config": {"class_names": ["ink", "clay"]}}))
    pipeline = Pipeline()
    gan = RenderOptions(weights=str(weights))
    assert pipeline.resolve_styles(gan) == ("ink",)
    assert pipeline.resolve_styles(gan.replace(styles=("clay",))) == ("clay",)
    with pytest.raises(OptionsError, match="unknown style 'oil'"):
        pipeline.resolve_styles(gan.replace(styles=("oil",)))
    weights.with_suffix(".json").write_text(json.dumps({"config": {"class_names": []}}))
    assert pipeline.resolve_styles(gan) == ("g",)  # unconditional: one style named after the file
    from face2emoticon.styles import STYLE_NAMES

    assert pipeline.resolve_styles(RenderOptions()) == STYLE_NAMES[:1]
    assert pipeline.resolve_styles(RenderOptions(stylizer="gan"))  # the shipped generator's config
    assert not pipeline._stylizers


def test_worker_threads_share_the_cores(monkeypatch):
    monkeypatch.setattr(ui.batch.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    assert [worker_threads(n) for n in (1, 2, 3, 4, 8)] == [4, 2, 1, 1, 1]
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    with child_threads(2):
        assert all(os.environ[name] == "2" for name in THREAD_VARIABLES)
    assert os.environ["OMP_NUM_THREADS"] == "7" and "MKL_NUM_THREADS" not in os.environ


def _worker_state() -> tuple:
    import torch

    return (torch.get_num_threads(), os.environ["OMP_NUM_THREADS"], len(ui.batch._pipeline()._stylizers),
            type(ui.batch._pipeline().stylizer(OPTS)).inversions)


def _start_fake_worker(threads: int, options: RenderOptions) -> None:
    """A spawned worker's start, as run_batch's real workers do it, on the stand-in stages."""
    ui.batch._WORKER_PIPELINE = fake_pipeline()
    ui.batch._worker_init(threads, options)


def test_workers_start_with_their_thread_share_and_models_loaded():
    # Spawned like the real workers: a fresh interpreter, whose thread pools may still be sized.
    with child_threads(1), cf.ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"),
                                                   initializer=_start_fake_worker, initargs=(1, OPTS)) as pool:
        threads, omp, stylizers, inversions = pool.submit(_worker_state).result(timeout=120)
    assert (threads, omp, stylizers) == (1, "1", 1)
    assert inversions == 1  # the warm-up ran the stylizer once, before any photo