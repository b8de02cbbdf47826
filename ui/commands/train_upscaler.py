"""``emoget train-upscaler DATA --out RUN``: train (or resume) the ×4 upscaler of the generator's stills."""
from __future__ import annotations

import argparse
import dataclasses
import json

from ui.flags import add_option_flags, options_from

_EPILOG = """\
DATA is a folder with one subfolder of renders per style (e.g. data/styles from `make data`); the last
--holdout files of each style are held out for validation. Pairs are random crops and their ×4
downsamples through GAN-like degradations (blur, resampling, smoothing, colour jitter, noise).
Re-running the same command on the same --out resumes from its last checkpoint. RUN gets config.json,
log.jsonl (losses, and PSNR/LPIPS of the upscaler and bicubic on the held-out renders), checkpoint/,
samples/ and upscaler.safetensors (+ .json), the model to ship.

example:
  emoget train-upscaler data/styles --out runs/upscale --threads 1 --minutes 30
"""


def register(subparsers) -> None:
    from face2emoticon.train_upscale import UpscaleTrainOptions

    p = subparsers.add_parser("train-upscaler", help="train the x4 upscaler of generated stills on style renders",
                              description=__doc__, epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", metavar="DATA_DIR", help="folder with one subfolder of images per style")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder (resumed when it has a checkpoint)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice); use 1 on a machine other jobs share")
    p.add_argument("--no-val-lpips", dest="val_lpips", action="store_false",
                   help="score the held-out renders by PSNR only during training (LPIPS costs ~40 ms per image)")
    add_option_flags(p, dataclasses.fields(UpscaleTrainOptions))
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import torch

    from face2emoticon.train_upscale import UpscaleTrainOptions, train_upscaler

    if args.threads:
        torch.set_num_threads(args.threads)
    opts = options_from(args, UpscaleTrainOptions)
    command = args.command_line
    result = train_upscaler(args.data, args.out, opts, command=command, val_lpips=args.val_lpips)
    print(f"step {result.step}: {result.model_path}  ({result.wall_time_s / 60:.1f} min of training)")
    if result.val:
        print(json.dumps(result.val))
    return 0
