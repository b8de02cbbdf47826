"""``emoget pack PHOTO -o pack.zip``: every expression × the chosen styles, a contact sheet, sticker files."""
from __future__ import annotations

import argparse

from ui.pack import DEFAULT_PRESET, make_pack
from ui.pipeline import (
    add_option_arguments,
    default_pipeline,
    options_from_args,
)


def register(subparsers) -> None:
    p = subparsers.add_parser("pack", help="a zip of every expression × styles, a contact sheet and sticker files")
    p.add_argument("photo", help="a photo with a face")
    p.add_argument("-o", "--output", required=True, help="the zip to write, e.g. pack.zip")
    add_option_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    pipeline = default_pipeline()
    overrides = {}
    if args.expressions is None:
        overrides["expressions"] = tuple(pipeline.expressions())
    options = options_from_args(args, **overrides)
    pack = make_pack(args.photo, args.output, options=options, pipeline=pipeline,
                     preset=options.preset or DEFAULT_PRESET)
    print(pack.path)
    print(f"{len(pack.result.clips)} animations, {len(pack.entries)} files", flush=True)
    return 0
