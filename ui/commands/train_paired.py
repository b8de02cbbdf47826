"""``emoget train-paired DATA --generator G --encoder E --out RUN``: fine-tune a generator and its encoder on the
style renders' cross-style pairs."""
from __future__ import annotations

import argparse
import dataclasses
import json

from ui.flags import add_option_flags, options_from

_EPILOG = """\
DATA is a folder with one subfolder of renders per style, every identity under the same file name in every
style (data/styles from `make data`). The generator's synthesis network and the encoder learn together to
reconstruct each render from the encoder's latent (L1 + LPIPS) and to draw the same identity in another style
with the pipeline's rendering rule (L1 of the coarse layout); the mapping network stays fixed. The last
--holdout identities are held out for validation. Re-running the same command on the same --out resumes.
RUN gets config.json, log.jsonl, checkpoint/, samples/, G.safetensors and encoder.safetensors (+ .json).

example:
  emoget train-paired data/styles --generator weights/stylegan2-emoget-64.safetensors \\
      --encoder weights/encoder-emoget-64.safetensors --out runs/paired --threads 2 --minutes 60
"""


def register(subparsers) -> None:
    from face2emoticon.train_paired import PairedTrainOptions

    p = subparsers.add_parser("train-paired", help="fine-tune a generator and its encoder on cross-style pairs",
                              description=__doc__, epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", metavar="DATA_DIR", help="folder with one subfolder of renders per style")
    p.add_argument("--generator", required=True, help="the conditional generator to start from (.safetensors)")
    p.add_argument("--encoder", required=True, help="its encoder (.safetensors), trained on that generator")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder (resumed when it has a checkpoint)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice); use 1 on a machine other jobs share")
    add_option_flags(p, dataclasses.fields(PairedTrainOptions))
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import torch

    from face2emoticon.train_paired import PairedTrainOptions, train_paired

    if args.threads:
        torch.set_num_threads(args.threads)
    opts = options_from(args, PairedTrainOptions)
    result = train_paired(args.data, args.out, generator=args.generator, encoder=args.encoder, options=opts,
                          command=args.command_line)
    print(f"step {result.step}: {result.generator_path} + {result.encoder_path}  "
          f"({result.wall_time_s / 60:.1f} min of training)")
    if result.val:
        print(json.dumps(result.val))
    return 0
