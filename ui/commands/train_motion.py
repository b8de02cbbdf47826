"""``emoget train-motion``: train the MoCoGAN-style landmark motion model on the expression prior."""
from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    p = subparsers.add_parser("train-motion", help="train the landmark motion model (CPU, ~15 min) and register it")
    p.add_argument("--steps", type=int, default=3500)
    p.add_argument("--n-train", type=int, default=12000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ms-weight", type=float, default=0.0,
                   help="mode-seeking weight: larger makes different seeds give more different takes (default 0)")
    p.add_argument("-o", "--output", default="weights/motion-mocogan-68.safetensors")
    p.add_argument("--name", default="motion-mocogan-68", help="registry entry to write ('' = do not register)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from video_gen.train_motion import TrainConfig, train_and_ship

    cfg = TrainConfig(steps=args.steps, n_train=args.n_train, seed=args.seed, ms_weight=args.ms_weight)
    cmd = (f"emoget train-motion --steps {args.steps} --n-train {args.n_train} --seed {args.seed}"
           + (f" --ms-weight {args.ms_weight:g}" if args.ms_weight else "") + f" -o {args.output}")
    result = train_and_ship(args.output, cfg=cfg, name=args.name or None, command=cmd, progress=True)
    print(json.dumps(result["metrics"], indent=2))
    return 0
