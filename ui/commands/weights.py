"""``emoget weights list|verify|fetch``."""
from __future__ import annotations

import argparse
import json

import weights
from landmarks.errors import WeightsError


def register(subparsers) -> None:
    p = subparsers.add_parser("weights", help="list, verify or fetch model weights")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="list registered weights with licence and origin")
    ls.add_argument("--json", action="store_true", help="print the registry as JSON")
    ls.set_defaults(func=_list)
    v = sub.add_parser("verify", help="recompute every shipped file's sha256 and compare with the registry")
    v.add_argument("names", nargs="*", help="only these entries")
    v.set_defaults(func=_verify)
    f = sub.add_parser("fetch", help="download weights that have a URL (official StyleGAN2, FAN...), checking sha256")
    f.add_argument("name")
    f.set_defaults(func=_fetch)


def _list(args: argparse.Namespace) -> int:
    entries = weights.load_registry()
    if args.json:
        print(json.dumps({n: e.to_json() for n, e in entries.items()}, indent=2))
        return 0
    if not entries:
        print("no weights registered")
        return 0
    for e in entries.values():
        where = "fetch" if e.url else ("shipped" if e.file.exists() else "MISSING")
        print(f"{e.name:28s} {e.kind:10s} {e.size / 1e6:7.2f} MB  {where:8s} licence: {e.licence}")
        if e.description:
            print(f"{'':28s} {e.description}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    entries = weights.load_registry()
    names = args.names or [n for n, e in entries.items() if not e.url or e.file.exists()]
    bad = 0
    for name in names:
        try:
            entry = weights.get(name)
            weights.path_of(name, verify=True)
            print(f"ok       {name}  {entry.sha256[:16]}")
        except WeightsError as exc:
            bad += 1
            print(f"FAILED   {name}: {exc}")
    return 1 if bad else 0


def _fetch(args: argparse.Namespace) -> int:
    path = weights.fetch(args.name)
    print(path)
    return 0
