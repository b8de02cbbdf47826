"""``emoget train-encoder``: train the in-domain encoder that gives inversion its start point."""
from __future__ import annotations

import argparse
import dataclasses
import sys

from face2emoticon.encoder import EncoderTrainOptions

_HELP = {
    "steps": "total optimisation steps (re-running with more steps continues the run)",
    "batch_size": "generator samples per step",
    "lr": "Adam learning rate",
    "seed": "seed of the encoder's init and of every batch",
    "latent_weight": "weight of ||E(G(w)) - w||^2",
    "mse_weight": "weight of the reconstruction MSE",
    "lpips_weight": "weight of the reconstruction LPIPS-alex",
    "truncation_min": "samples use truncation psi ~ U(this, 1) toward their class mean",
    "checkpoint_minutes": "save the resume state at least this often",
    "checkpoint_every": "also save the resume state every N steps (0: off)",
    "log_every": "append losses and held-out validation to log.jsonl every N steps",
    "val_size": "held-out generator samples used for validation",
    "channel_base": "encoder width: channels at resolution r = min(channel_base // r, channel_max)",
    "channel_max": "encoder width cap",
    "init": "start from this encoder's weights (e.g. to continue a finished run at a lower --lr)",
}


def register(subparsers) -> None:
    p = subparsers.add_parser("train-encoder", help="train an encoder (image -> ws) on a generator's own samples",
                              description="Train an in-domain encoder for GAN inversion; resumable: re-run the "
                                          "same command after an interruption.")
    p.add_argument("--generator", required=True, help="generator checkpoint (.safetensors with its .json)")
    p.add_argument("--out", required=True, help="run folder (encoder.safetensors, log.jsonl, checkpoint/)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    for f in dataclasses.fields(EncoderTrainOptions):
        p.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default,
                       help=f"{_HELP.get(f.name, '')} (default: {f.default})")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from face2emoticon.checkpoint import load_generator
    from face2emoticon.encoder import train_encoder
    from weights import sha256_of

    options = EncoderTrainOptions(**{f.name: getattr(args, f.name) for f in dataclasses.fields(EncoderTrainOptions)})
    G = load_generator(args.generator, device=args.device)

    def progress(step: int, total: int, terms: dict) -> None:
        text = " ".join(f"{k} {v:.4f}" for k, v in terms.items())
        print(f"\rstep {step}/{total}  {text}", end="", file=sys.stderr, flush=True)

    command = args.command_line
    result = train_encoder(G, args.out, options=options, command=command, generator_sha256=sha256_of(args.generator),
                           progress=None if args.quiet else progress)
    if not args.quiet:
        print(file=sys.stderr)
    val = " ".join(f"{k} {v:.4f}" for k, v in result.val.items())
    print(f"{result.encoder_path}  steps {result.steps} (resumed from {result.resumed_from})  held-out: {val}")
    return 0
