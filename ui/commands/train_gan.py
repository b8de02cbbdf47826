"""``emoget train-gan DATA --out RUN``: train (or resume, or fine-tune) the conditional StyleGAN2."""
from __future__ import annotations

import argparse

import torch

from face2emoticon.train import TrainOptions, option_fields, train
from ui.flags import add_option_flags, options_from

_EPILOG = """\
DATA is a folder (or zip) with one subfolder per class (style), images of any size.
Re-running the same command on the same --out resumes from its last checkpoint (written every
--checkpoint-minutes and on Ctrl-C/SIGTERM). RUN gets config.json, log.jsonl, checkpoint/, samples/ and
G_ema.safetensors (+ .json), the generator to ship.

examples:
  emoget train-gan data/styles --out runs/default64 --resolution 64 --batch 8 --minutes 600
  emoget train-gan data/pixel --out runs/pixel-ft --base runs/default64 --freeze-d 2 --freeze-mapping \\
      --freeze-g-below 16 --steps 3000
"""


def register(subparsers) -> None:
    p = subparsers.add_parser("train-gan", help="train the conditional StyleGAN2 on a folder of class subfolders",
                              description=__doc__, epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", metavar="DATA_DIR", help="folder or zip with one subfolder of images per class")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder (resumed when it has a checkpoint)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice). On a machine other jobs share, use 1: "
                        "oversubscribed OpenMP threads ran 10x slower here (64 px: 1.3 s/step on 1 thread, "
                        "13-17 s/step on 2 threads beside another job)")
    add_option_flags(p, option_fields())
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    opts = options_from(args, TrainOptions)
    command = args.command_line
    result = train(args.data, args.out, opts, command=command)
    print(f"step {result.step}: {result.generator_path}  ({result.wall_time_s / 60:.1f} min of training)")
    if result.last_log:
        print(" ".join(f"{k}={v}" for k, v in result.last_log.items()))
    return 0
