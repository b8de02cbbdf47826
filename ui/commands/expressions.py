"""``emoget expressions``: the expressions an emoticon can make."""
from __future__ import annotations

import argparse
import json

from ui.pipeline import describe_expressions


def register(subparsers) -> None:
    p = subparsers.add_parser("expressions", help="list the available expressions")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    rows = describe_expressions()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        print(f"{r['name']:12s} {r['description']}")
    return 0
