"""``python -m face2emoticon.styledata --out data``: render the style data set (see the package docstring)."""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time

from face2emoticon.styledata import build
from face2emoticon.styles import STYLE_NAMES
from landmarks.errors import EmogetError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m face2emoticon.styledata", description=__doc__)
    p.add_argument("--out", default="data", help="output folder (default: data)")
    p.add_argument("--count", type=int, default=int(os.environ.get("EMOGET_DATA_COUNT", "3000")),
                   help="identities, each rendered in every style (default 3000, or $EMOGET_DATA_COUNT)")
    p.add_argument("--pairs", type=int, default=50, help="identities also rendered in every expression (default 50)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    p.add_argument("--styles", nargs="*", choices=STYLE_NAMES, help="only these styles (default: all)")
    p.add_argument("--workers", type=int, default=2, help="parallel Node renderers (default 2)")
    p.add_argument("--force", action="store_true", help="re-render images that already exist")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    t0 = time.time()
    try:
        summary = build(args.out, count=args.count, pairs=args.pairs, seed=args.seed, size=args.size,
                        styles=tuple(args.styles) if args.styles else None, workers=args.workers, force=args.force)
    except EmogetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    n = sum(s["images"] + s["pairs"] for s in summary["styles"].values())
    print(f"{n} images in {args.out}/ ({time.time() - t0:.0f} s); manifest sha256 {summary['manifest_sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
