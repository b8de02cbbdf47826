"""The recipe of the shipped ×4 upscaler ``upscale-emoget-x4`` (64-px stills → 256-px display size).

Steps (run from the repository root, after ``make data``)::

    python -m face2emoticon.recipes.upscaler train                    # the exact emoget train-upscaler commands
    python -m face2emoticon.recipes.upscaler ship --run runs/upscale  # copy model + log, score, register
    python -m face2emoticon.recipes.upscaler figure                   # docs/upscale.png

Why this model: the generator's 64-px stills were only Lanczos-resized to their 256-px display size, which
looks blurry; the style renders are 256-px vector art, so (degraded ×4 downsample, render) pairs are free.
A ~130k-parameter residual CNN (4 blocks of 32 channels at 64 px, two pixel-shuffle ×2 stages, bicubic skip)
runs a still in ~25 ms on one CPU thread. Loss: L1 + 0.5 × L1 of image gradients (crisp outlines). LPIPS as
a loss was measured on CPU (see the comment at ``LPIPS_NOTE``) and left out.

Degradations, judged on the generator's own samples (``figure``): a first model trained without shading
or halos sharpened outlines well but turned the stills' soft colour gradients into bands of flat colour
and sharpened the light rims the generator leaves around dark shapes. Random smooth shading of some
targets (:func:`face2emoticon.train_upscale.shade`) and unsharp-mask halos in the inputs were added.

Restoring stage (the shipped model): synthetic degradations are not the generator's artefacts (wavy
outlines, blobby eyes, colour fringes). The shipped generator and encoder redraw 500 training renders per
style (the encoder's latent fitted by 10 Adam steps, as the pipeline's inversion fits a proxy:
:func:`face2emoticon.train_upscale.redraws`); half of the pairs of a fine-tune of the first model have a
redraw as input and the clean render as target, so the network learns to restore what the pipeline hands
it. ``ship`` scores the model on redraws of every held-out render as well.

Its loss, judged by looking and by the glasses figure (``figures.glasses_figures``: 16 held-out identities
with glasses, the share of stills closer to the render with glasses than without): with L1 + edge alone
(4,000 steps on one-shot redraws, or 3,000 on fitted ones) the stills came out clean but glasses were
erased everywhere (2.5 % and 0 %, against 59 % through the first stage or Lanczos): a thin stroke the
generator draws faintly and not quite in place costs L1 less when left out. Adding 0.5 x LPIPS-alex keeps
them (see the registry entry's figures), at the price of some of the wavy lines coming back.
"""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

NAME = "upscale-emoget-x4"
RUN = Path("runs/upscale")
DATA = Path("data")
TRAIN_ARGS = ["--batch", "16", "--seed", "0", "--val-every", "1000", "--sample-every", "500", "--log-every", "50"]
STAGES = ((6500, "34"),)  # (--steps, --minutes) of each resumable stage in the one run folder
# Measured before choosing the loss (4 min each on one shared thread, 48 held-out renders, PSNR dB / LPIPS):
#   L1 + edge:                 717 steps; degraded 29.37 / 0.077, plain 32.22 / 0.024
#   L1 + edge + 0.1 LPIPS:     450 steps (1.6x slower per step); degraded 29.10 / 0.069, plain 31.56 / 0.027
# (bicubic: degraded 24.16 / 0.347, plain 27.17 / 0.240). A small LPIPS gain on degraded inputs only, paid for
# with PSNR and with 40 % fewer steps: not worth it on CPU.
LPIPS_NOTE = "A/B at equal wall time: LPIPS loss 1.6x slower per step, mixed result; left out"
FIGURE = Path("docs/upscale.png")
RESTORE_RUN = Path("runs/restore")
GENERATOR, ENCODER = Path("weights/stylegan2-emoget-64.safetensors"), Path("weights/encoder-emoget-64.safetensors")
RESTORE_ARGS = ["--threads", "2", "--steps", "2000", *TRAIN_ARGS, "--minutes", "30", "--per-style", "500",
                "--generator", str(GENERATOR), "--encoder", str(ENCODER), "--redraw-p", "0.5", "--redraw-steps", "10",
                "--lr", "0.001", "--lpips-weight", "0.5"]


def train_args(steps: int, minutes: str) -> list[str]:
    return ["data/styles", "--out", str(RUN), "--threads", "1", "--steps", str(steps), *TRAIN_ARGS,
            "--minutes", minutes]


def train_command(steps: int, minutes: str) -> str:
    return "emoget train-upscaler " + " ".join(shlex.quote(a) for a in train_args(steps, minutes))


def restore_args(init: Path = RUN / "upscaler.safetensors") -> list[str]:
    """The restoring stage: a fine-tune of the first stage's model (``init``) with the generator's redraws."""
    return ["data/styles", "--out", str(RESTORE_RUN), *RESTORE_ARGS[:2], "--init", str(init), *RESTORE_ARGS[2:]]


def restore_command(init: Path = RUN / "upscaler.safetensors") -> str:
    return "emoget train-upscaler " + " ".join(shlex.quote(a) for a in restore_args(init))


def heldout_targets(data: Path = DATA, *, per_style: int | None = None, holdout: int = 50,
                    with_styles: bool = False):
    """uint8 ``[256,256,3]`` held-out renders (the last ``holdout`` files of each style), style by style
    (``with_styles``: and the list of their styles)."""
    from face2emoticon.train_upscale import read_image, split_files

    _, _, val = split_files(data / "styles", holdout=holdout)
    targets = [read_image(p, size=256) for files in val.values() for p in files[:per_style]]
    if with_styles:
        return targets, [s for s, files in val.items() for _ in files[:per_style]]
    return targets


def ship(run: Path = RUN, *, name: str = NAME, data: Path = DATA, weights_dir: Path | None = None) -> dict:
    """Copy ``run``'s upscaler and log into ``weights/``, score it on every held-out render, register it.

    A restoring run (trained with ``--generator``) must have started from the model shipped now or from the
    first stage it was fine-tuned from; that start's origin is kept as ``init``, the replaced model's scores
    as ``metrics.heldout.replaced``. Its redraws here are one-shot (``G(E(x))``), whatever the run trained on.
    """
    import weights as registry
    from face2emoticon.recipes.default import training_licence
    from face2emoticon.train_upscale import evaluate, image_list, redraws, stack_images
    from face2emoticon.upscale import load_upscaler
    from landmarks.errors import EmogetError

    weights_dir = weights_dir or registry.WEIGHTS_DIR
    registry_path = weights_dir / "registry.json"
    model = load_upscaler(run / "upscaler.safetensors")  # strict: refuses a half-written or mismatched file
    info = json.loads((run / "upscaler.json").read_text())
    origin = dict(info["origin"])
    opts = origin.get("train_options", {})
    targets, styles = heldout_targets(data, holdout=int(opts.get("holdout", 50)), with_styles=True)
    redrawn = None
    if opts.get("generator"):
        old = registry.load_registry(registry_path).get(name)
        start = origin.get("init_sha256")
        if old is not None and start == old.sha256:
            init = old.origin
        elif old is not None and start and start == old.origin.get("init_sha256"):
            init = old.origin.get("init", {})  # a new restoring stage from the first stage the shipped one had
        else:
            raise EmogetError(f"{run} did not start from the shipped {name} or from the model it was fine-tuned "
                              f"from (--init sha256 {start}); train the restoring stage from one of them")
        for key in ("generator", "encoder"):
            if origin.get(f"{key}_sha256") != registry.sha256_of(opts[key]):
                raise EmogetError(f"{opts[key]} changed since {run} was trained; retrain with the shipped {key}")
        redrawn = image_list(redraws(opts["generator"], opts["encoder"], stack_images(targets), styles))
        replaced_model = load_upscaler(old.file)
        replaced = evaluate(replaced_model, targets, lpips=True, redrawn=redrawn)
        origin.update({"init": init, "command": restore_command(), "executed": origin.get("command")})
        commands = [train_command(s, m) for s, m in STAGES] + [restore_command()]
    else:
        replaced = None
        commands = [train_command(s, m) for s, m in STAGES]
        origin["command"] = " && ".join(commands)
    metrics = evaluate(model, targets, lpips=True, redrawn=redrawn)
    glasses = _glasses(opts, model, replaced_model) if redrawn is not None else None
    dst = weights_dir / f"{name}.safetensors"
    shutil.copyfile(run / "upscaler.safetensors", dst)
    shutil.copyfile(run / "upscaler.json", dst.with_suffix(".json"))
    log_name = f"{name}.restore.log.jsonl" if redrawn is not None else f"{name}.log.jsonl"
    shutil.copyfile(run / "log.jsonl", weights_dir / log_name)
    manifest = json.loads((data / "manifest.json").read_text())
    origin.update({
        "recipe": "python -m face2emoticon.recipes.upscaler (see its docstring); all stages: "
                  + " && ".join(commands),
        "data": "data/styles from `python -m face2emoticon.styledata --out data --count 3000 --pairs 50 --seed 0` "
                "(make data); the last 50 identities of each style held out",
        "data_manifest_sha256": manifest["manifest_sha256"],
        "log": log_name,
        "loss_choice": LPIPS_NOTE,
    })
    heldout = {"n": metrics["n"], **{k: v for k, v in metrics.items() if k != "n"},
               "note": "mean PSNR (dB) / LPIPS-alex against the 256-px renders of the held-out identities; "
                       "'degraded': 64-px inputs through the training degradations (fixed seeds), 'plain': "
                       "Lanczos-downsampled renders (what the generator imitates), 'redraw': the shipped "
                       "generator's one-shot redraws G(E(x)) of the renders (what the pipeline hands it)"}
    if replaced is not None:
        heldout["replaced"] = {k: v for k, v in replaced.items() if k != "n"}
    extra = {"glasses": glasses} if glasses else {}
    cfg = info["config"]
    entry = registry.register(
        name, dst, kind="upscaler", licence=training_licence(), origin=origin,
        description=f"x4 super-resolution CNN for 64-px stills ({cfg['blocks']} residual blocks x "
                    f"{cfg['channels']} ch, two pixel-shuffle x2 stages, bicubic skip)"
                    + (", fine-tuned to restore the generator's redraws" if redrawn is not None else ""),
        metrics={"heldout": heldout, **extra}, registry_path=registry_path)
    return entry.to_json()


def _glasses(opts: dict, model, replaced, *, n: int = 16) -> dict | None:
    """The glasses figure (:func:`face2emoticon.recipes.figures.glasses_figures`) of ``model`` and of the model it
    replaces, through the pipeline's inversion of proxies; None for a generator of other styles than the
    vector ones."""
    from face2emoticon.checkpoint import load_generator
    from face2emoticon.encoder import load_encoder
    from face2emoticon.recipes.figures import glasses_figures
    from face2emoticon.styles import STYLE_NAMES

    G, E = load_generator(opts["generator"]), load_encoder(opts["encoder"])
    if not set(G.cfg.class_names) <= set(STYLE_NAMES):
        return None
    figure = {k: glasses_figures(G, encoder=E, upscaler=m, invert_style=G.cfg.class_names[0], n=n, steps=10)
              for k, m in (("upscaler", model), ("replaced", replaced))}
    return {"upscaler": figure["upscaler"]["upscaler"], "replaced": figure["replaced"]["upscaler"],
            "lanczos": figure["upscaler"]["lanczos"], "n": n, "invert_steps": 10,
            "note": "share of 16 held-out identities with glasses whose 256-px still is closer (LPIPS-alex) to "
                    "their render with glasses than without, per style (Twemoji draws none)"}


def gan_stills(*, seeds: tuple[int, ...] | None = None, psi: float = 0.7) -> list[tuple[str, np.ndarray]]:
    """(style, uint8 [64,64,3]) samples of the shipped generator, one per style at fixed seeds."""
    import torch

    import weights as registry
    from face2emoticon.checkpoint import load_generator
    from face2emoticon.upscale import to_uint8

    G = load_generator(registry.path_of("stylegan2-emoget-64"))
    out = []
    for i, style in enumerate(G.cfg.class_names):
        seed = (seeds or tuple(range(100, 100 + len(G.cfg.class_names))))[i]
        z = torch.randn(1, G.cfg.z_dim, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            out.append((style, to_uint8(G(z, torch.tensor([i]), truncation_psi=psi))))
    return out


def figure(path: Path = FIGURE, *, data: Path = DATA, crop: int = 160, weights: Path | None = None) -> Path:
    """The sheet of ``docs/upscale.png``: rows = generator samples (one per style) and held-out renders
    (downsampled plainly, degraded, and redrawn by the shipped generator from its encoder's latent);
    columns = 64 px (nearest), Lanczos to 256, upscaler to 256, the true 256 render. Each cell is the
    central ``crop`` pixels of the 256-px image, at its native scale (the face, pixel for pixel).
    ``weights``: an upscaler file (default: the registry's). Saved at 6 bits per channel (< 400 KB)."""
    from PIL import Image, ImageDraw, ImageOps

    import weights as registry
    from face2emoticon.train_upscale import degraded_input, lanczos, plain_input
    from face2emoticon.upscale import load_upscaler, upscale

    model = load_upscaler(weights or registry.path_of(NAME))
    rows: list[tuple[str, np.ndarray, np.ndarray | None]] = [(f"GAN {s}", x, None) for s, x in gan_stills()]
    if (data / "styles").is_dir():
        from face2emoticon.train_upscale import image_list, redraws, stack_images

        renders, styles = heldout_targets(data, per_style=1, with_styles=True)
        rows.append(("held-out, plain 64", plain_input(renders[2]), renders[2]))  # micah: line art
        rows.append(("held-out, degraded 64", degraded_input(renders[4], seed=11), renders[4]))  # personas: flat
        if GENERATOR.exists() and ENCODER.exists():  # the generator's own redraw of a render it never saw
            picked = [0, 5]  # avataaars, twemoji
            drawn = redraws(GENERATOR, ENCODER, stack_images([renders[i] for i in picked]), [styles[i] for i in picked])
            for i, r in zip(picked, image_list(drawn), strict=True):
                rows.append(("held-out, GAN redraw", r, renders[i]))
    head, pad = 18, 2
    cols = ["64 px (nearest)", "Lanczos to 256", "upscaler to 256", "true 256 render"]
    cw = crop + pad
    sheet = Image.new("RGB", (len(cols) * cw, head + len(rows) * cw), "white")
    d = ImageDraw.Draw(sheet)
    for j, c in enumerate(cols):
        d.text((j * cw + 4, 3), c, fill="black")
    o = (256 - crop) // 2
    for i, (label, lr, hr) in enumerate(rows):
        near = np.asarray(Image.fromarray(lr).resize((256, 256), Image.Resampling.NEAREST))
        cells = [near, lanczos(lr), upscale(model, lr), hr]
        for j, cell in enumerate(cells):
            if cell is not None:
                sheet.paste(Image.fromarray(cell[o:o + crop, o:o + crop]), (j * cw, head + i * cw))
        d.text((3 * cw + 4, head + i * cw + 4), label, fill=(90, 90, 90))
    path.parent.mkdir(parents=True, exist_ok=True)
    ImageOps.posterize(sheet, 6).save(path, optimize=True)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m face2emoticon.recipes.upscaler", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("train", help="run the exact emoget train-upscaler commands (the first stage, then the "
                                 "restoring stage from its model)")
    s = sub.add_parser("ship", help="copy the run's model and log into weights/ and register it")
    s.add_argument("--run", type=Path, default=RESTORE_RUN)
    sub.add_parser("figure", help="write docs/upscale.png")
    args = ap.parse_args(argv)
    if args.cmd == "train":
        emoget = Path(sys.executable).with_name("emoget")
        for args_ in [train_args(steps, minutes) for steps, minutes in STAGES] + [restore_args()]:
            print("emoget train-upscaler " + " ".join(shlex.quote(a) for a in args_), flush=True)
            rc = subprocess.call([str(emoget), "train-upscaler", *args_])
            if rc:
                return rc
        return 0
    if args.cmd == "ship":
        print(json.dumps(ship(args.run)["metrics"], indent=2))
        return 0
    print(figure())
    return 0


if __name__ == "__main__":
    sys.exit(main())
