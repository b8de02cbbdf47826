"""``emoget invert``: a face photo (or an aligned crop) -> its latent in a generator, for debugging."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("invert", help="invert a photo or an aligned face crop into a generator's latent space")
    p.add_argument("image", help="a photo (the largest face is detected and aligned) or, with --crop, an aligned crop")
    p.add_argument("--weights", required=True, help="generator checkpoint (.safetensors with its .json)")
    p.add_argument("--style", help="style (class) to invert into; default: the generator's first")
    p.add_argument("-o", "--out", required=True, help="output latent (.safetensors, added when the name has no "
                                                       "suffix); a .png of the result is written beside it")
    p.add_argument("--crop", action="store_true", help="the image is already an aligned square face crop")
    p.add_argument("--encoder", help="encoder checkpoint for the start point (default: the class's mean w)")
    p.add_argument("--steps", type=int, default=300, help="optimisation steps (default: 300)")
    p.add_argument("--mode", choices=("w", "w+"), default="w+", help="latent space (default: w+)")
    p.add_argument("--optimizer", choices=("adam", "lbfgs"), default="adam",
                   help="adam (the StyleGAN2 projector's schedule) or lbfgs (converges much faster from a close "
                        "start such as --encoder's; every evaluation counts as a step; no --optimize-noise) "
                        "(default: adam)")
    p.add_argument("--lpips-weight", type=float, default=1.0)
    p.add_argument("--mse-weight", type=float, default=1.0)
    p.add_argument("--face-mask", action="store_true", help="weight the face region (from the landmarks) higher")
    p.add_argument("--optimize-noise", action="store_true", help="also optimise the noise maps (saved in the file)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from PIL import Image

    from face2emoticon.checkpoint import load_generator
    from face2emoticon.invert import face_mask, invert
    from landmarks.errors import EmogetError
    from landmarks.io import load_image

    if args.optimizer == "lbfgs" and args.optimize_noise:
        raise EmogetError("--optimizer lbfgs cannot optimise the noise maps; drop --optimize-noise or use adam")
    G = load_generator(args.weights, device=args.device)
    try:
        class_index = G.class_index(args.style) if args.style else (0 if G.c_dim else None)
    except ValueError as exc:
        raise EmogetError(str(exc)) from None
    image = load_image(args.image)
    mask = None
    size = G.cfg.resolution
    if args.crop:
        crop = image
        if args.face_mask:
            from landmarks import detect

            mask = face_mask(detect(crop).points, image_size=crop.shape[1], resolution=size)
    else:
        from landmarks import align, detect

        aligned = align(image, detect(image).points, size=max(256, size))
        crop = aligned.image
        if args.face_mask:
            mask = face_mask(aligned.points, image_size=aligned.image.shape[1], resolution=size)
    encoder = None
    if args.encoder:
        from face2emoticon.encoder import load_encoder

        encoder = load_encoder(args.encoder, device=args.device)

    def progress(step: int, total: int, terms: dict) -> None:
        text = " ".join(f"{k} {v:.4f}" for k, v in terms.items())
        print(f"\rstep {step}/{total}  {text}", end="", file=sys.stderr, flush=True)

    result = invert(G, np.ascontiguousarray(crop), class_index=class_index, num_steps=args.steps, mode=args.mode,
                    encoder=encoder, mse_weight=args.mse_weight, lpips_weight=args.lpips_weight, mask=mask,
                    optimize_noise=args.optimize_noise, optimizer=args.optimizer,
                    generator=torch.Generator().manual_seed(args.seed),
                    progress=progress)
    print(file=sys.stderr)
    out = Path(args.out)
    if not out.suffix:
        out = out.with_suffix(".safetensors")
    out.parent.mkdir(parents=True, exist_ok=True)
    result.save(out)
    png = out.with_suffix(".png")
    Image.fromarray(np.concatenate([_resized(crop, size), result.image_uint8()], axis=1)).save(png)
    final = result.terms.get("lpips", result.losses)[-1] if result.losses else float("nan")
    print(f"{out}  ({png.name}: target | result)  final lpips {final:.4f}")
    return 0


def _resized(img, size: int):
    import numpy as np
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.LANCZOS))
