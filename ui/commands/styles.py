"""``emoget styles``: the styles the generator offers, with the licence of their art."""
from __future__ import annotations

import argparse
import json

from ui.pipeline import describe_styles


def register(subparsers) -> None:
    p = subparsers.add_parser("styles", help="list the available styles and their art licences")
    p.add_argument("--weights", default=None, help="list the styles of these weights instead of the shipped ones")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    rows = describe_styles(weights=args.weights)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if rows and not rows[0]["available"]:
        print("(the generator could not be loaded: these are the registered styles; see `emoget weights list`)")
    for r in rows:
        print(f"{r['name']:12s} {r['description']}")
        print(f"{'':12s} licence: {r['licence']}")
    return 0
