"""The step loop the supervised trainers share (``train-upscaler``, ``train-paired``), and its small helpers.

A trainer has ``step``, ``wall_time_s``, ``train_step() -> {name: float}``, ``write_samples()`` and ``save()``;
:func:`run_steps` logs, validates, samples and checkpoints it on schedule, and stops at ``steps``, after
``minutes``, on SIGTERM or on Ctrl-C (the caller saves, then re-raises the interrupt).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from face2emoticon.checkpoint import atomic_write_text
from landmarks.errors import EmogetError


def check_resume_options(run_dir: str | os.PathLike, saved: dict[str, Any], options, mutable: set[str], *,
                         error: type[Exception] = EmogetError) -> None:
    """Refuse to resume ``run_dir`` (its ``saved`` options dict) with a dataclass ``options`` that differs in
    anything but the ``mutable`` fields; an option the run predates counts as having its default."""
    defaults = {f.name: f.default for f in dataclasses.fields(options)}
    diff = {k: (saved.get(k, defaults.get(k)), v) for k, v in options.to_json().items()
            if k not in mutable and saved.get(k, defaults.get(k)) != v}
    if diff:
        desc = ", ".join(f"--{k.replace('_', '-')} was {a!r}, now {b!r}" for k, (a, b) in diff.items())
        raise error(f"'{run_dir}' holds a run with other options ({desc}); re-run with the same options to "
                    "resume, or pass a new --out")


@contextlib.contextmanager
def sigterm_flag():
    """A ``threading.Event`` set by SIGTERM while the block runs (the handler is restored after)."""
    flag = threading.Event()
    try:
        previous = signal.signal(signal.SIGTERM, lambda *_: flag.set())
    except ValueError:  # signals only work in the main thread
        previous = None
    try:
        yield flag
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def append_jsonl(path: Path, entry: dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(entry) + "\n")


def truncate_log(path: Path, step: int) -> None:
    """Drop the lines of a JSONL log written after ``step`` (a resumed run writes them again)."""
    if path.exists():
        lines = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln).get("step", 0) <= step]
        atomic_write_text(path, "".join(ln + "\n" for ln in lines))


def hardware() -> str:
    return (f"{platform.machine()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch thread(s), "
            f"torch {torch.__version__}")


def run_steps(trainer, *, log_path: Path, steps: int, batch: int, minutes: float | None, log_every: int,
              val_every: int, sample_every: int, checkpoint_minutes: float, validate: Callable[[], dict],
              log_extra: Callable[[int], dict] = lambda step: {},
              on_step: Callable[[int], None] | None = None) -> tuple[dict[str, Any], bool]:
    """Train ``trainer`` to ``steps``; returns (the last log line, whether Ctrl-C stopped it).

    Every ``log_every`` steps a line of the mean of each ``train_step`` term since the last line, plus
    ``log_extra(step)``, images per second and wall time; every ``val_every`` steps ``{"step", "val": validate()}``
    (its time counts as training time); samples every ``sample_every``; ``save()`` every ``checkpoint_minutes``.
    """
    t_start = t_ckpt = time.monotonic()
    acc: dict[str, list[float]] = {}
    last: dict[str, Any] = {}
    interrupted = False
    t_log, n_log = time.perf_counter(), trainer.step
    with sigterm_flag() as stop:
        try:
            while trainer.step < steps and not stop.is_set():
                t0 = time.perf_counter()
                for k, v in trainer.train_step().items():
                    acc.setdefault(k, []).append(v)
                trainer.wall_time_s += time.perf_counter() - t0
                step = trainer.step
                if step % log_every == 0 or step == steps:
                    now = time.perf_counter()
                    last = {"step": step, **{k: round(sum(v) / len(v), 5) for k, v in acc.items()}, **log_extra(step),
                            "img_per_s": round((step - n_log) * batch / max(now - t_log, 1e-9), 2),
                            "wall_time_s": round(trainer.wall_time_s, 1)}
                    append_jsonl(log_path, last)
                    acc, t_log, n_log = {}, now, step
                if val_every and step % val_every == 0:
                    t0 = time.perf_counter()
                    append_jsonl(log_path, {"step": step, "val": validate()})
                    trainer.wall_time_s += time.perf_counter() - t0
                if sample_every and step % sample_every == 0:
                    trainer.write_samples()
                if (time.monotonic() - t_ckpt) / 60 >= checkpoint_minutes:
                    trainer.save()
                    t_ckpt = time.monotonic()
                if on_step is not None:
                    on_step(step)
                if minutes is not None and (time.monotonic() - t_start) / 60 >= minutes:
                    break
        except KeyboardInterrupt:
            interrupted = True
    return last, interrupted
