"""``emoget`` command line: parses arguments and calls the library, nothing more."""
from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import shlex
import sys

import ui.commands
from landmarks.errors import EmogetError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emoget",
        description="One face photo in, an animated emoticon of that person out.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and timings")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(ui.commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"ui.commands.{info.name}")
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.command_line = "emoget " + " ".join(shlex.quote(a) for a in argv)  # provenance of what it writes
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except EmogetError as exc:
        print(f"emoget {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"emoget {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
