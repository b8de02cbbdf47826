"""``emoget render PHOTO --style S --expression E -o OUT.gif``: one photo → animated emoticon file(s)."""
from __future__ import annotations

import argparse
import sys

from ui.pipeline import add_option_arguments, default_pipeline, options_from_args


def register(subparsers) -> None:
    p = subparsers.add_parser("render", help="one photo → an animated emoticon (GIF, WebP, APNG, MP4, WebM)",
                              description="Render PHOTO as an animated emoticon. With several styles or "
                                          "expressions, -o names a folder.")
    p.add_argument("photo", help="a photo with a face (JPEG, PNG, WebP, ...)")
    p.add_argument("-o", "--output", required=True,
                   help="output file (its suffix picks the format: .gif .webp .apng .mp4 .webm) or a folder")
    add_option_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    result = default_pipeline().render(args.photo, options=options, output=args.output)
    for f in result.files:
        print(f)
    print(format_timings(result.timings), file=sys.stderr)
    return 0


def format_timings(timings: dict[str, float]) -> str:
    total = sum(timings.values())
    return f"{total:.2f} s: " + ", ".join(f"{k} {v:.2f}" for k, v in timings.items() if v >= 0.005)
