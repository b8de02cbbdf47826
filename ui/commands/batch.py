"""``emoget batch IN_DIR -o OUT_DIR``: every photo × styles × expressions, resumable, with a manifest."""
from __future__ import annotations

import argparse

from landmarks.errors import EmogetError
from ui.batch import MANIFEST, run_batch
from ui.pipeline import add_option_arguments, default_pipeline, options_from_args


def register(subparsers) -> None:
    p = subparsers.add_parser("batch", help="render a folder of photos; re-run the same command to resume",
                              description="Render every photo in IN_DIR in each style and expression. "
                                          f"OUT_DIR/{MANIFEST} gets one row per output; re-running the same "
                                          "command skips finished outputs and redoes half-written ones.")
    p.add_argument("in_dir", help="folder of photos (searched recursively)")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default: 1)")
    p.add_argument("--dry-run", action="store_true", help="list the work and what is already done; render nothing")
    p.add_argument("--retry-errors", action="store_true", help="also redo outputs that failed before")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_option_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise EmogetError(f"--workers must be at least 1, got {args.workers}")
    summary = run_batch(args.in_dir, args.output, options=options_from_args(args), workers=args.workers,
                        dry_run=args.dry_run, retry_errors=args.retry_errors, progress=not args.no_progress,
                        pipeline=default_pipeline())
    if args.dry_run:
        print(f"{summary.jobs} outputs planned, {summary.skipped} already done or failed before")
        return 0
    print(f"{summary.ok} rendered, {summary.failed} failed, {summary.skipped} already done, "
          f"{summary.seconds:.1f} s; manifest: {args.output}/{MANIFEST}")
    return 1 if summary.failed else 0
