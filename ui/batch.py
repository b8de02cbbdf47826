"""Resumable batch rendering: every photo in a folder × styles × expressions.

The plan is one *job* per output file. ``OUT_DIR/manifest.jsonl`` gets one JSON row
per finished job (``input``, ``style``, ``expression``, ``output``, ``status``,
``error``, ``seconds``), appended as each job ends, so a batch killed at any
moment (even with SIGKILL) is resumed by running the same command again:

- a job whose row says ``ok`` and whose file exists is skipped;
- outputs are written to a temporary ``.<name>.<random>.part<suffix>`` name and renamed when complete,
  so a half-written file never looks done; stale temporaries are removed on start;
- a job whose file exists but has no row (killed between rename and row) is redone.

One bad photo never stops the batch: its jobs get ``error`` rows (re-tried only with
``retry_errors=True``). At the end the manifest is rewritten (atomically) with
exactly one row per job, in plan order.

With ``workers > 1`` photos are shared among worker processes; each worker keeps
its own pipeline, so a photo's inversion is done once for all its styles and expressions.
Each worker gets an even share of the cores for its thread pools and loads its models
when it starts; the parent only plans (style names come from the weights' config).
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import json
import logging
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from landmarks.errors import EmogetError
from ui.pipeline import Pipeline, RenderOptions, atomic_write, is_partial, output_name

log = logging.getLogger(__name__)

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
MANIFEST = "manifest.jsonl"


@dataclass(frozen=True)
class Job:
    """One output: ``input`` and ``output`` are paths relative to the input and output folders."""

    input: str
    style: str
    expression: str
    output: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.input, self.style, self.expression)


@dataclass
class BatchSummary:
    jobs: int = 0
    skipped: int = 0  # done by an earlier run
    ok: int = 0
    failed: int = 0
    seconds: float = 0.0
    rows: list[dict] = field(default_factory=list)  # the final manifest, one row per job

    @property
    def outputs_per_second(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


def find_photos(in_dir: str | os.PathLike) -> list[Path]:
    """Image files under ``in_dir`` (recursively, sorted), by suffix; hidden files are ignored."""
    in_dir = Path(in_dir)
    if not in_dir.is_dir():
        raise EmogetError(f"input folder {in_dir} does not exist or is not a folder; give a folder of photos")
    return sorted(p for p in in_dir.rglob("*") if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(in_dir).parts))


def plan(in_dir, *, styles: Iterable[str], expressions: Iterable[str], ext: str) -> list[Job]:
    """Every (photo, style, expression) job, photos outermost. Outputs go to ``<photo stem dir>/...``."""
    in_dir = Path(in_dir)
    jobs = []
    for photo in find_photos(in_dir):
        rel = photo.relative_to(in_dir)
        # Keep sub-folders, and the source suffix in the name, so a.jpg and a.png never collide.
        stem = f"{rel.stem}-{rel.suffix.lstrip('.').lower()}"
        for style in styles:
            for expression in expressions:
                out = rel.parent / output_name(stem, style, expression, ext)
                jobs.append(Job(input=rel.as_posix(), style=style, expression=expression, output=out.as_posix()))
    return jobs


class Manifest:
    """The append-only JSONL record of finished jobs; the last row for a job wins."""

    def __init__(self, out_dir: str | os.PathLike):
        self.path = Path(out_dir) / MANIFEST

    def load(self) -> dict[tuple[str, str, str], dict]:
        rows: dict[tuple[str, str, str], dict] = {}
        if not self.path.exists():
            return rows
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                try:
                    row = json.loads(line)
                    rows[(row["input"], row["style"], row["expression"])] = row
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # a line cut short by a kill: its job is simply redone
        return rows

    def append(self, row: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            if f.tell() and not self._ends_with_newline():
                f.write("\n")  # after a torn line, start a fresh one
            f.write(json.dumps(row) + "\n")
            f.flush()

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"

    def rewrite(self, rows: list[dict]) -> None:
        def write(tmp: Path):
            tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

        atomic_write(self.path, write)


def remove_partials(out_dir: Path) -> int:
    """Delete temporaries left by an interrupted run; returns how many."""
    n = 0
    if out_dir.exists():
        for p in out_dir.rglob(".*"):
            if p.is_file() and is_partial(p):
                p.unlink()
                n += 1
    return n


def status_of(jobs: list[Job], out_dir: Path, done: dict) -> dict[Job, str]:
    """Each job's state: ``done`` (ok row and file present), ``failed`` (error row) or ``todo``."""
    states = {}
    for job in jobs:
        row = done.get(job.key)
        if row and row.get("status") == "ok" and (out_dir / job.output).is_file():
            states[job] = "done"
        elif row and row.get("status") == "error":
            states[job] = "failed"
        else:
            states[job] = "todo"
    return states


# --------------------------------------------------------------------------- workers

_WORKER_PIPELINE: Pipeline | None = None
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def worker_threads(workers: int) -> int:
    """Threads per worker process: the cores this process may run on, shared evenly; at least one."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity outside Linux
        cores = os.cpu_count() or 1
    return max(1, cores // workers)


@contextlib.contextmanager
def child_threads(threads: int) -> Iterator[None]:
    """Processes started inside the block size their numeric libraries' thread pools to ``threads``
    (the variables are read when a library loads); this process's environment comes back after."""
    saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    os.environ.update({name: str(threads) for name in THREAD_VARIABLES})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _worker_init(threads: int, options: RenderOptions) -> None:
    """A worker process's start: its share of the cores, then its pipeline with every model loaded, so
    the workers load their models side by side rather than each in its first photo."""
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # settable only before torch's first parallel work
        pass
    try:
        import cv2

        cv2.setNumThreads(threads)
    except ImportError:  # pragma: no cover - opencv comes with the landmark back-ends
        pass
    try:
        _pipeline().warm(options)
    except Exception:  # a model that cannot load fails each job, with its own message
        log.warning("could not load the models before the first photo", exc_info=True)


def _pipeline() -> Pipeline:
    global _WORKER_PIPELINE
    if _WORKER_PIPELINE is None:
        _WORKER_PIPELINE = Pipeline()
    return _WORKER_PIPELINE


def render_photo(in_dir: str, out_dir: str, jobs: list[Job], options: RenderOptions) -> list[dict]:
    """Render one photo's jobs (in this process); returns one manifest row per job. Never raises."""
    from landmarks.errors import FaceTooSmall, ImageError, NoFaceFound

    pipeline = _pipeline()
    rows = []
    for i, job in enumerate(jobs):
        t0 = time.perf_counter()
        row = {**asdict(job), "status": "ok", "error": None}
        photo_unusable = False
        try:
            opts = options.replace(styles=(job.style,), expressions=(job.expression,))
            pipeline.render(Path(in_dir) / job.input, options=opts, output=Path(out_dir) / job.output)
        except (ImageError, NoFaceFound, FaceTooSmall) as exc:
            row.update(status="error", error=str(exc))
            photo_unusable = True
        except EmogetError as exc:
            row.update(status="error", error=str(exc))
        except Exception as exc:  # one bad photo never stops the batch
            log.exception("job %s failed", job)
            row.update(status="error", error=f"{type(exc).__name__}: {exc}")
        row["seconds"] = round(time.perf_counter() - t0, 3)
        rows.append(row)
        if photo_unusable:
            # The photo itself is unusable: its other jobs would fail the same way.
            rows += [{**asdict(j), "status": "error", "error": row["error"], "seconds": 0.0} for j in jobs[i + 1:]]
            break
    return rows


# --------------------------------------------------------------------------- driver


def run_batch(in_dir, out_dir, *, options: RenderOptions | None = None, workers: int = 1, dry_run: bool = False,
              retry_errors: bool = False, progress: bool = True, pipeline: Pipeline | None = None,
              echo: Callable[[str], None] | None = None) -> BatchSummary:
    """Render every photo in ``in_dir`` × ``options.styles`` × ``options.expressions`` into ``out_dir``.

    ``workers``: processes (1 = in this process). ``dry_run``: only list the jobs (via ``echo``).
    ``pipeline``: the pipeline to use (default: the real one). Worker processes build their own
    real pipeline; a pipeline of injected stages is inherited by forked workers instead.
    """
    global _WORKER_PIPELINE
    options = options or RenderOptions()
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    pipeline = pipeline or Pipeline()
    styles = pipeline.resolve_styles(options)
    jobs = plan(in_dir, styles=styles, expressions=options.expressions, ext=pipeline.extension(options))
    manifest = Manifest(out_dir)
    done = manifest.load()
    states = status_of(jobs, out_dir, done)
    todo = [j for j in jobs if states[j] == "todo" or (retry_errors and states[j] == "failed")]
    summary = BatchSummary(jobs=len(jobs), skipped=len(jobs) - len(todo))
    if dry_run:
        for job in jobs:
            state = states[job] if job in todo or states[job] != "failed" else "failed (skipped)"
            (echo or print)(f"{state:8s} {job.input} → {job.output} [{job.style}, {job.expression}]")
        return summary
    out_dir.mkdir(parents=True, exist_ok=True)
    n_partial = remove_partials(out_dir)
    if n_partial:
        log.info("removed %d half-written file(s) from an interrupted run", n_partial)

    by_photo: dict[str, list[Job]] = {}
    for job in todo:
        by_photo.setdefault(job.input, []).append(job)
    bar = _progress_bar(len(jobs), summary.skipped, enabled=progress)
    t0 = time.perf_counter()

    def record(rows: list[dict]):
        for row in rows:
            manifest.append(row)
            done[(row["input"], row["style"], row["expression"])] = row
            if row["status"] == "ok":
                summary.ok += 1
            else:
                summary.failed += 1
            bar.update(1)
        bar.set_postfix(ok=summary.ok, failed=summary.failed)

    _WORKER_PIPELINE = pipeline
    try:
        if workers <= 1 or len(by_photo) <= 1:
            for photo_jobs in by_photo.values():
                record(render_photo(str(in_dir), str(out_dir), photo_jobs, options))
        else:
            _run_pool(by_photo, in_dir, out_dir, options, workers, record)
    finally:
        bar.close()
    summary.seconds = time.perf_counter() - t0
    summary.rows = [done[j.key] for j in jobs if j.key in done]
    manifest.rewrite(summary.rows)
    return summary


def _run_pool(by_photo, in_dir, out_dir, options, workers, record) -> None:
    # The real stages are not fork-safe once used (MediaPipe's graph and torch's thread pools hang
    # in a forked child), so real workers are spawned and build their own pipeline. Injected
    # stand-in stages are forked, so the workers inherit them, loaded, with the parent's thread settings
    # (touching torch's or OpenCV's thread pools in a forked child can hang it).
    fork = _WORKER_PIPELINE is not None and _WORKER_PIPELINE.injected and "fork" in mp.get_all_start_methods()
    ctx = mp.get_context("fork" if fork else "spawn")
    threads = worker_threads(workers)
    with child_threads(threads):
        _run_workers(by_photo, in_dir, out_dir, options, workers, record, ctx=ctx,
                     init=None if fork else (threads, options))


def _run_workers(by_photo, in_dir, out_dir, options, workers, record, *, ctx, init) -> None:
    pending = dict(by_photo)
    try:
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=init and _worker_init,
                                    initargs=init or ()) as pool:
            futures = {pool.submit(render_photo, str(in_dir), str(out_dir), jobs, options): photo
                       for photo, jobs in pending.items()}
            for fut in cf.as_completed(futures):
                rows = fut.result()
                pending.pop(futures[fut])
                record(rows)
    except cf.process.BrokenProcessPool:
        # A worker died (out of memory, a crash in native code). Which photo did it is unknown,
        # so render what is left one photo per process: the culprit fails alone, the rest go on.
        log.warning("a worker process died; rendering the %d remaining photo(s) one by one", len(pending))
        for jobs in pending.values():
            try:
                with cf.ProcessPoolExecutor(max_workers=1, mp_context=ctx, initializer=init and _worker_init,
                                            initargs=init or ()) as pool:
                    rows = pool.submit(render_photo, str(in_dir), str(out_dir), jobs, options).result()
            except cf.process.BrokenProcessPool:
                rows = [{**asdict(j), "status": "error", "error": "the process rendering this photo crashed",
                         "seconds": 0.0} for j in jobs]
            record(rows)


class _NoBar:
    def update(self, n=1):
        pass

    def set_postfix(self, **kw):
        pass

    def close(self):
        pass


def _progress_bar(total: int, initial: int, *, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="gif", desc="batch", file=sys.stderr, dynamic_ncols=True)
