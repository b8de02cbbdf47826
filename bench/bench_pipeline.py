"""Pipeline speed: photo → 24-frame 128-px GIF per stage, cold and warm; batch throughput, 1 vs 2 workers.

Cold = the first render in this process (models load, first inversion); warm = a second photo
with everything loaded. Batch, for each stylizer: 24 distinct photos made from the samples (crops, mirrored)
× 2 expressions, rendered by ``emoget batch`` in a fresh process as users run it, with 1 worker (default
threads), 1 worker on 1 thread and 2 workers; the ratios are measured in this run. Each run reports its
end-to-end rate (process start and model loading included) and its steady rate (from the first finished GIF
to the last, by the files' modification times: what a long batch runs at).
``EMOGET_BENCH_QUICK=1``: a smoke run (4 frames, 2 inversion steps, one photo per sample), not figures.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image, ImageOps

from ui.batch import THREAD_VARIABLES
from ui.demo import sample_photos
from ui.pipeline import Pipeline, RenderOptions

OPTIONS = RenderOptions(expressions=("happy",), frames=24, size=128)


def _row(label: str, timings: dict[str, float], total: float) -> str:
    return f"{label:5s} total {total:6.2f} s | " + "  ".join(f"{k} {v:5.2f}" for k, v in timings.items())


def main() -> None:
    torch.set_num_threads(1)
    quick = os.environ.get("EMOGET_BENCH_QUICK") == "1"
    options = OPTIONS.replace(frames=4, invert_steps=2) if quick else OPTIONS
    photos = sample_photos()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for stylizer in ("vector", "gan"):
            opts = options.replace(stylizer=stylizer)
            t0 = time.perf_counter()
            pipeline = Pipeline()
            pipeline.stylizer(opts)
            load_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            cold = pipeline.render(photos[0], options=opts, output=tmp / "cold.gif")
            cold_s = time.perf_counter() - t0 + load_s
            t0 = time.perf_counter()
            warm = pipeline.render(photos[1], options=opts, output=tmp / "warm.gif")
            warm_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            cached = pipeline.render(photos[1], options=opts.replace(expressions=("sad",)), output=tmp / "again.gif")
            cached_s = time.perf_counter() - t0
            print(f"--stylizer {stylizer}: photo → 24-frame 128-px GIF, seconds per stage (1 thread)")
            print(f"model load {load_s:.2f} s (counted in cold)")
            print(_row("cold", cold.timings, cold_s))
            print(_row("warm", warm.timings, warm_s))
            print(_row("same photo, new expression (inversion cached)", cached.timings, cached_s))
            print(f"warm target ≤ 10 s: {'met' if warm_s <= 10 else 'NOT met'} ({warm_s:.2f} s)")

        batch(tmp, photos, quick=quick)


def batch_photos(photos: list[Path], out: Path, *, quick: bool) -> list[Path]:
    """Distinct photos from the samples (6 crops × mirrored or not each; 1 per sample when ``quick``): different
    pixels, so no photo hits another's cached latent."""
    out.mkdir()
    variants = [(0, False)] if quick else [(crop, flip) for crop in range(0, 36, 6) for flip in (False, True)]
    paths = []
    for p in photos:
        with Image.open(p) as im:
            im = im.convert("RGB")
            w, h = im.size
            for crop, flip in variants:
                v = im.crop((crop, crop, w - crop, h - crop))
                paths.append(out / f"{p.stem}_{crop}{'_mirrored' if flip else ''}.png")
                (ImageOps.mirror(v) if flip else v).save(paths[-1])
    return paths


def batch(tmp: Path, photos: list[Path], *, quick: bool) -> None:
    """``emoget batch`` in a fresh process each time, as users run it (model loading included): one worker
    with its default threads, one worker with one thread, and two workers (the batch gives each its share of
    the cores: one thread each on 2 cores)."""
    in_dir = tmp / "in"
    n = len(batch_photos(photos, in_dir, quick=quick))
    cores = len(os.sched_getaffinity(0))
    extra = ["--frames", "4", "--invert-steps", "2"] if quick else []
    runs = (("1 worker", 1, None), ("1 worker, 1 thread", 1, "1"), ("2 workers", 2, None))
    for stylizer in ("vector", "gan"):
        rates, steady = {}, {}
        for label, workers, threads in runs:
            out = tmp / f"out-{stylizer}-{label.replace(' ', '').replace(',', '')}"
            env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}  # default: every core
            if threads:
                env.update({k: threads for k in THREAD_VARIABLES})
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "ui", "batch", str(in_dir), "-o", str(out), "--workers",
                            str(workers), "--no-progress", "--expressions", "happy,surprised", "--size", "128",
                            "--stylizer", stylizer, *extra], check=True, env=env, stdout=subprocess.DEVNULL)
            seconds = time.perf_counter() - t0
            rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines() if line.strip()]
            ok = sum(r["status"] == "ok" for r in rows)
            rates[label] = ok / seconds
            steady[label] = steady_rate([out / r["output"] for r in rows if r["status"] == "ok"])
            print(f"emoget batch --stylizer {stylizer}, {label}: {ok} GIFs of {n} photos in {seconds:.1f} s = "
                  f"{rates[label]:.2f} GIF/s end to end, {steady[label]:.2f} GIF/s steady ({len(rows) - ok} failed)")
        for what, r in (("end to end", rates), ("steady", steady)):
            ratio = r["2 workers"] / r["1 worker"] if r["1 worker"] else 0.0
            per_process = r["2 workers"] / r["1 worker, 1 thread"] if r["1 worker, 1 thread"] else 0.0
            print(f"--stylizer {stylizer}, {what}: 2 workers vs 1 worker: {ratio:.2f}x (target ≥ 1.7x; "
                  f"{'met' if ratio >= 1.7 else 'NOT met'} here); vs 1 single-threaded worker: {per_process:.2f}x. "
                  f"{cores} cores, load average {os.getloadavg()[0]:.1f}" + (" (quick run: not a figure)" if quick else ""))


def steady_rate(files: list[Path]) -> float:
    """GIF/s between the first and the last file written (start-up excluded); 0 for fewer than 2 files."""
    times = sorted(f.stat().st_mtime for f in files)
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0


if __name__ == "__main__":
    main()
