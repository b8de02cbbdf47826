"""``emoget blend BASE TUNED --swap-resolution R -o OUT``: layer-swap two generators into a new checkpoint."""
from __future__ import annotations

import argparse

from PIL import Image

from face2emoticon.blend import blend, blend_sheet
from face2emoticon.checkpoint import save_generator
from face2emoticon.foreign import load_any_generator


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "blend", help="blend two generators by resolution (low res from one, high res from the other)",
        description="Write a generator whose synthesis blocks below --swap-resolution come from one network and "
                    "the rest from the other. BASE/TUNED: our .safetensors, a train-gan run folder, a rosinality "
                    ".pt or an NVlabs .pkl (same architecture).")
    p.add_argument("base", help="base generator (e.g. the one the tuned network was fine-tuned from)")
    p.add_argument("tuned", help="fine-tuned generator")
    p.add_argument("-o", "--out", required=True, help="output checkpoint (writes OUT.safetensors and OUT.json)")
    p.add_argument("--swap-resolution", type=int, required=True, help="first resolution taken from the high side")
    p.add_argument("--alpha", type=float, default=1.0, help="strength: 0 = base, 1 = tuned weights (default 1)")
    p.add_argument("--low-from", choices=("base", "tuned"), default="base",
                   help="which network gives the resolutions below the swap (default base)")
    p.add_argument("--mapping-from", choices=("base", "tuned"), default="tuned",
                   help="which network's mapping (and class names) to keep (default tuned)")
    p.add_argument("--sheet", help="also write a PNG sample sheet across all swap resolutions")
    p.add_argument("--class-index", type=int, default=0, help="class for the sample sheet (conditional models)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3], help="columns of the sample sheet")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    base, tuned = load_any_generator(args.base), load_any_generator(args.tuned)
    kw = {"alpha": args.alpha, "low_from": args.low_from, "mapping_from": args.mapping_from}
    G = blend(base, tuned, swap_resolution=args.swap_resolution, **kw)
    path = save_generator(G, args.out, extra={"origin": {"blend": {"base": args.base, "tuned": args.tuned,
                                                                    "swap_resolution": args.swap_resolution, **kw}}})
    print(path)
    if args.sheet:
        grid, labels = blend_sheet(base, tuned, class_index=args.class_index, seeds=args.seeds, **kw)
        Image.fromarray(grid).save(args.sheet)
        print(f"{args.sheet}: rows {', '.join(labels)}")
    return 0
