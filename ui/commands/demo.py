"""``emoget demo -o out/``: the main job, headless, on the bundled sample photos."""
from __future__ import annotations

import argparse
import sys

from ui.commands.render import format_timings
from ui.demo import run_demo
from ui.pipeline import add_option_arguments, options_from_args


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="render the bundled sample photos in every style (headless)")
    p.add_argument("-o", "--output", default="out", help="output folder (default: out)")
    p.add_argument("--photos", nargs="*", default=None, help="photos to use instead of the bundled samples")
    add_option_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    overrides = {} if args.expressions is not None else {"expressions": ("happy", "surprised", "wink")}
    options = options_from_args(args, **overrides)
    for photo, result, sheet in run_demo(args.output, options=options, photos=args.photos):
        print(f"{photo}: {len(result.files)} files, contact sheet {sheet}")
        print(f"  {format_timings(result.timings)}", file=sys.stderr)
    return 0
