"""The recipe of the shipped generator's paired fine-tune (``emoget train-paired``), and its shipping.

Steps (resumable; run from the repository root, after ``make data``)::

    python -m face2emoticon.recipes.paired train [--minutes 100]   # the exact emoget train-paired command below
    python -m face2emoticon.recipes.paired ship                    # its G and encoder become the defaults
    python -m face2emoticon.recipes.figures --weights stylegan2-emoget-64 --encoder encoder-emoget-64 \\
        --optimizer lbfgs                                          # metrics into the registry, sheets

Why: the adversarially trained default (``stylegan2-emoget-64`` before this stage, 130k images on one core)
draws soft blobs for held-out renders and photos alike. The style data draws every identity in every style,
so a supervised stage can teach the generator the renders themselves: the synthesis network and the encoder
learn together to reconstruct renders from the encoder's latents and to keep the person's coarse layout in
the other styles under the pipeline's rendering rule (:mod:`face2emoticon.train_paired`). It starts from the
shipped generator and encoder; the mapping network (and so every class's mean w) is kept.
"""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from face2emoticon.recipes.default import (
    ENCODER,
    NAME,
    _check_classes,
    _data_origin,
    training_licence,
)

RUN = Path("runs/paired64")
TRAIN_ARGS = ["data/styles", "--generator", f"weights/{NAME}.safetensors", "--encoder",
              f"weights/{ENCODER}.safetensors", "--out", str(RUN), "--threads", "2", "--steps", "7000"]


def command(minutes: float | None) -> str:
    """The ``emoget train-paired`` command line of the recipe (+ ``--minutes``)."""
    tail = f" --minutes {minutes:g}" if minutes is not None else ""
    return "emoget train-paired " + " ".join(shlex.quote(a) for a in TRAIN_ARGS) + tail


def ship(run: Path = RUN, *, data: Path = Path("data"), weights_dir: Path | None = None) -> tuple[dict, dict]:
    """Copy ``run``'s generator and encoder into ``weights/`` under the default names and register both.

    Refuses a run that did not start from the generator and encoder shipped now (their sha256 are in the run's
    config), so an entry's origin always names the weights it was fine-tuned from; those entries' origins are
    kept inside the new ones (``base``, ``init``). Returns (generator entry, encoder entry).
    """
    import weights as registry
    from face2emoticon.checkpoint import load_generator
    from face2emoticon.encoder import load_encoder
    from landmarks.errors import WeightsError

    weights_dir = weights_dir or registry.WEIGHTS_DIR
    reg_path = weights_dir / "registry.json"
    entries = registry.load_registry(reg_path)
    config = json.loads((run / "config.json").read_text())
    start = config["start"]
    for name, key in ((NAME, "generator_sha256"), (ENCODER, "encoder_sha256")):
        if name in entries and entries[name].sha256 != start[key]:
            raise WeightsError(f"{run} was fine-tuned from a {name} with sha256 {start[key][:12]}, not the shipped "
                               f"one ({entries[name].sha256[:12]}); start the run again from weights/")
    G = load_generator(run / "G.safetensors")  # strict: refuses a half-written or mismatched file
    _check_classes(G, run / "G.safetensors")
    E = load_encoder(run / "encoder.safetensors")
    if E.cfg.num_ws != G.num_ws or tuple(E.cfg.class_names) != tuple(G.cfg.class_names):
        raise WeightsError(f"{run}'s encoder does not fit its generator")
    info = json.loads((run / "G.json").read_text())
    origin = dict(info["origin"])
    log_name = f"{NAME}.paired.log.jsonl"
    shutil.copyfile(run / "log.jsonl", weights_dir / log_name)
    origin.update({
        "recipe": "python -m face2emoticon.recipes.paired train, then ship (see its docstring)",
        **_data_origin(origin, data),
        "log": log_name,
        "validation": info.get("val"),
    })
    g_origin = {**origin, "base": {"sha256": start["generator_sha256"],
                                   "origin": entries[NAME].origin if NAME in entries else None}}
    e_origin = {**origin, "generator_sha256": None,
                "init": {"sha256": start["encoder_sha256"],
                         "origin": entries[ENCODER].origin if ENCODER in entries else None}}
    # The entries are registered anew: the figures of the weights they replace do not carry over.
    registry.save_registry({k: v for k, v in entries.items() if k not in (NAME, ENCODER)}, reg_path)
    for src, dst in ((run / "G", weights_dir / NAME), (run / "encoder", weights_dir / ENCODER)):
        shutil.copyfile(src.with_suffix(".safetensors"), dst.with_suffix(".safetensors"))
    info["origin"] = g_origin
    (weights_dir / f"{NAME}.json").write_text(json.dumps(info, indent=2) + "\n")
    e_info = json.loads((run / "encoder.json").read_text())
    e_info["origin"] = e_origin
    (weights_dir / f"{ENCODER}.json").write_text(json.dumps(e_info, indent=2) + "\n")
    from face2emoticon.styles import STYLE_NAMES

    g_entry = registry.register(
        NAME, weights_dir / f"{NAME}.safetensors", kind="generator", licence=training_licence(), origin=g_origin,
        description=f"conditional StyleGAN2, 64 px, classes: {', '.join(STYLE_NAMES)}; adversarial training, then "
                    "paired fine-tuning with its encoder on the cross-style renders",
        registry_path=reg_path)
    e_origin["generator_sha256"] = g_entry.sha256
    e_entry = registry.register(
        ENCODER, weights_dir / f"{ENCODER}.safetensors", kind="encoder",
        licence=f"trained with {NAME} on the style renders: {training_licence()}", origin=e_origin,
        metrics={"heldout_identities": info.get("val")},
        description=f"inversion encoder (image -> W+) for {NAME}, trained with it on the style renders: the "
                    "inversion's start point", registry_path=reg_path)
    return g_entry.to_json(), e_entry.to_json()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m face2emoticon.recipes.paired", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", required=True)
    t = sub.add_parser("train", help="start or resume the paired fine-tune (foreground; wrap in setsid nohup ... &)")
    t.add_argument("--minutes", type=float, default=100.0)
    s = sub.add_parser("ship", help="copy the run's generator and encoder into weights/ and register them")
    s.add_argument("--run", type=Path, default=RUN)
    s.add_argument("--data", type=Path, default=Path("data"))
    args = p.parse_args(argv)
    if args.action == "train":
        emoget = str(Path(sys.executable).with_name("emoget"))
        return subprocess.call([emoget, "train-paired", *TRAIN_ARGS, "--minutes", f"{args.minutes:g}"])
    g, e = ship(args.run, data=args.data)
    for entry in (g, e):
        print(f"registered {entry['name']}: {entry['path']} {entry['size'] / 1e6:.2f} MB, "
              f"step {entry['origin'].get('steps')}, sha256 {entry['sha256'][:12]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
