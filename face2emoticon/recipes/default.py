"""The recipe of the shipped default generator ``stylegan2-emoget-64``.

Steps (each resumable; run from the repository root)::

    make data                                   # 3000 identities x 6 styles, 256 px, + expression pairs
    python -m face2emoticon.recipes.default train [--minutes 90]   # stage 1: the exact emoget train-gan command below
    python -m face2emoticon.recipes.default ship --run runs/default64   # copy EMA weights + log, register
    python -m face2emoticon.recipes.default train --stage 2 --minutes 95   # stage 2: continue it (see below)
    python -m face2emoticon.recipes.figures --weights runs/g64ttur/G_ema.safetensors --out runs/figures.json
    python -m face2emoticon.recipes.default ship --stage 2      # G_ema + its D + the stage-2 log, register both,
                                                # only once its figures beat stage 1's; until then:
    python -m face2emoticon.recipes.default keep --figures runs/figures.json   # the run's G_ema, D, log and
                                                # figures as weights/training/stylegan2-emoget-64-stage2
    python -m face2emoticon.recipes.default train-encoder       # after a new default generator: fine-tune the
    python -m face2emoticon.recipes.default ship-encoder        # encoder on its samples, then ship it
    python -m face2emoticon.recipes.figures --weights stylegan2-emoget-64   # metrics into the registry, sheets

What is trained and why (CPU budget: about 1.5 hours on one shared core):

* One conditional StyleGAN2 at 64 px, one class per style (:data:`face2emoticon.styles.STYLE_NAMES`),
  trained directly on the class folders ``data/styles/<style>/``. The issue's full recipe (base ->
  per-style FreezeD fine-tunes -> resolution blending -> distillation on same-z pairs) needs a base that
  has converged first; at ~5-12 img/s on one core a base run alone would take the whole budget, leaving
  the fine-tunes and the distillation untrained. A directly trained conditional model is the only one
  that reaches recognisable avatars in every style within the budget; whether it keeps the person across
  styles is measured (``figures``: ΔE00 of skin and hair against the true renders of held-out identities,
  compared with each style's mean face), not assumed.
* A narrower network than the 64-px default (``channel_base 4096, channel_max 128``: 64 channels at
  64 px, 128 below): measured 2.5x the images per second of the default width on one thread
  (12-13 vs 5 img/s), so it sees 2.5x more data in the same time, which matters more than width this
  early in training. bf16 autocast, batch 8, ADA, lazy R1, EMA as ``emoget train-gan`` defaults.
* Renders are flat vector art on a fixed ``f2f2f2`` background, so the class images are clean and
  mutually aligned; no mirroring (hair partings and asymmetric glyphs are part of the styles).
* Stage 2 continues the stage-1 generator, which was shipped without its discriminator, beside a fresh
  one. A fresh D against a trained G needs three things, each measured: no augmentation at first (with
  ADA's p at 0.4 it never separated reals from fakes), a head start (``--d-warmup 400``: D alone, to
  D_real - D_fake ~ 6) and a slower generator (``--g-lr 0.0002`` for the first 1,400 steps, then 0.0005;
  at D's 0.0025 it fell back to chance within 100 steps and stayed there). Two threads. From stage 2 on
  the discriminator ships beside the generator (named in its JSON), so the next stage resumes with it.
"""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

NAME = "stylegan2-emoget-64"
RUN = Path("runs/default64")
DATA_COMMAND = "python -m face2emoticon.styledata --out data --count 3000 --pairs 50 --seed 0"
TRAIN_ARGS = ["data/styles", "--out", str(RUN), "--threads", "1", "--background", "f2f2f2", "--resolution", "64",
              "--batch", "8", "--channel-base", "4096", "--channel-max", "128", "--steps", "100000",
              "--checkpoint-minutes", "5", "--sample-every", "500", "--log-every", "50", "--no-progress"]

# Stage 2: continue the stage-1 generator (sha256 STAGE1_SHA256, shipped as weights/stylegan2-emoget-64 at the
# time, without a discriminator). The first invocation ran 14 minutes with --g-lr 0.0002 --checkpoint-minutes 30
# --sample-every 400; every later one is CONTINUE_ARGS (the learning rates may change between resumes).
STAGE1_SHA256 = "5d34fe6ee1d97eb2eb17abd805d745c47704d4bf81130929c0829a51564e3f15"
STAGE1 = {"steps": 16253, "kimg": 130.024, "wall_time_s": 9396.6, "threads": 1}
CONTINUE_RUN = Path("runs/g64ttur")
_STAGE2_FLAGS = ["--threads", "2", "--background", "f2f2f2", "--ema-rampup", "0", "--g-lr", "0.0005",
                 "--checkpoint-minutes", "5", "--sample-every", "1000", "--log-every", "50", "--no-progress"]
CONTINUE_ARGS = ["data/styles", "--out", str(CONTINUE_RUN), "--base", "weights/stylegan2-emoget-64.safetensors",
                 "--d-warmup", "400", "--seed", "1", *_STAGE2_FLAGS]

# Where stage 2 stands (committed, registered as stylegan2-emoget-64-stage2): without the run folder, training goes
# on from it (its discriminator comes from beside it, so no warm-up) in a new folder.
KEPT = f"{NAME}-stage2"
CHECKPOINT = Path(f"weights/training/{KEPT}/G_ema.safetensors")
FROM_CHECKPOINT_ARGS = ["data/styles", "--out", "runs/g64stage2b", "--base", str(CHECKPOINT), "--seed", "2",
                        *_STAGE2_FLAGS]


# The inversion encoder follows the generator it ships with: after a new default generator it is fine-tuned on
# that generator's samples from the shipped encoder (the first one was trained from scratch at --lr 0.001, then
# at 0.0002; see its registry entry), then shipped with `ship-encoder`.
ENCODER = "encoder-emoget-64"
ENCODER_RUN = Path("runs/encoder-retarget")


def encoder_args(generator: Path, steps: int, out: Path = ENCODER_RUN) -> list[str]:
    """The ``emoget train-encoder`` arguments that fine-tune the shipped encoder on ``generator``'s samples."""
    return ["--generator", str(generator), "--out", str(out), "--init", f"weights/{ENCODER}.safetensors",
            "--lr", "0.0002", "--seed", "3", "--steps", str(steps), "--quiet"]


def _command(args: list[str], minutes=None) -> str:
    """The ``emoget train-gan`` command line of ``args`` (+ ``--minutes``)."""
    tail = f" --minutes {minutes}" if minutes is not None else ""
    return "emoget train-gan " + " ".join(shlex.quote(a) for a in args) + tail


def training_licence() -> str:
    """The licence line of weights trained on the default styles' renders (every art licence, by style)."""
    from face2emoticon.styles import STYLES

    parts = [f"{s.name}: {s.licence}" for s in STYLES]
    return ("trained on renders of " + "; ".join(parts)
            + " (attribution in face2emoticon/styles.py; weights themselves Apache-2.0)")


def _stage2_origin(origin: dict) -> dict:
    """Add stage 1 (the base, its figures, the command) and the totals of both stages to a stage-2 origin."""
    origin["base_sha256"] = STAGE1_SHA256
    origin["stage1"] = STAGE1
    origin["total"] = {k: round(STAGE1[k] + float(origin.get(k, 0)), 3) for k in ("steps", "kimg", "wall_time_s")}
    if not origin.get("invocations"):  # runs from before the trainer recorded every invocation
        origin["resumes"] = ("stage 2's first invocation ran 14 minutes (1,419 steps: 400 of D alone, then G at "
                             "--g-lr 0.0002) with --threads 1 --checkpoint-minutes 30 --sample-every 400; the "
                             "command above resumed it at --g-lr 0.0005 on two threads, was stopped with SIGTERM "
                             "(a checkpoint) and re-run with --steps at the step reached to export the run")
    origin["stage1_command"] = _command(TRAIN_ARGS, 150)
    return origin


def _data_origin(origin: dict, data: Path) -> dict:
    """The training data's provenance: the command that renders it and the hashes of its files and manifest
    (the trainer records the former as ``data_manifest_sha256``; ``make data`` writes the latter)."""
    manifest = data / "manifest.sha256"
    return {"data": f"data/styles from `{DATA_COMMAND}` (make data)",
            "dataset_files_sha256": origin.get("data_manifest_sha256"),
            "data_manifest_sha256": manifest.read_text().split()[0] if manifest.exists() else origin.get(
                "data_manifest_sha256")}


def _check_classes(G, src: Path) -> None:
    from face2emoticon.styles import STYLE_NAMES
    from landmarks.errors import WeightsError

    if tuple(G.cfg.class_names) != STYLE_NAMES:
        raise WeightsError(f"{src} has classes {G.cfg.class_names}, expected the default styles {STYLE_NAMES}")


def keep(run: Path, *, name: str = KEPT, data: Path = Path("data"), weights_dir: Path | None = None,
         figures: Path | None = None) -> dict:
    """Keep stage 2's run as a registered training checkpoint (not the default generator): its EMA generator, its
    discriminator, config and log (and ``figures``' JSON, whose figures become the entry's metrics) go to
    ``weights/training/<name>/``, registered as ``name`` and ``name-D``. Returns the generator's entry."""
    import weights as registry
    from face2emoticon.checkpoint import load_discriminator, load_generator
    from face2emoticon.recipes.figures import registry_metrics

    weights_dir = weights_dir or registry.WEIGHTS_DIR
    _check_classes(load_generator(run / "G_ema.safetensors"), run / "G_ema.safetensors")
    load_discriminator(run / "D.safetensors")  # a kept run resumes with its D: refuse a run without one
    dst = weights_dir / "training" / name
    dst.mkdir(parents=True, exist_ok=True)
    for f in ("G_ema.safetensors", "G_ema.json", "D.safetensors", "D.json", "config.json", "log.jsonl"):
        shutil.copyfile(run / f, dst / f)
    metrics = None
    if figures is not None:
        shutil.copyfile(figures, dst / "figures.json")
        metrics = registry_metrics(json.loads(figures.read_text()))
    origin = dict(json.loads((run / "G_ema.json").read_text()).get("origin") or {})
    origin.update({
        **_data_origin(origin, data),
        "base": f"{NAME} (sha256 {STAGE1_SHA256}), without a discriminator",
        "log": f"training/{name}/log.jsonl",
        "recipe": "python -m face2emoticon.recipes.default train --stage 2 (see its docstring)",
    })
    _stage2_origin(origin)
    kimg = float(origin.get("kimg", 0))
    d_entry = registry.register(
        f"{name}-D", dst / "D.safetensors", kind="checkpoint", licence=training_licence(),
        origin=origin | {"generator": name}, registry_path=weights_dir / "registry.json",
        description=f"the discriminator of {name} (resumes the run with it)")
    entry = registry.register(
        name, dst / "G_ema.safetensors", kind="checkpoint", licence=training_licence(), origin=origin,
        metrics=metrics, registry_path=weights_dir / "registry.json",
        description=f"training checkpoint (not the default generator): {NAME} continued for {kimg:.0f}k images with "
                    f"its discriminator beside it ({d_entry.name}); resume with `python -m "
                    f"face2emoticon.recipes.default train --stage 2` or `emoget train-gan ... --base "
                    f"weights/training/{name}/G_ema.safetensors`")
    return entry.to_json()


def ship_encoder(run: Path, generator: Path, *, name: str = ENCODER, weights_dir: Path | None = None) -> dict:
    """Copy ``run``'s encoder (trained on ``generator``, checked) and its log into ``weights/`` as ``name``,
    register it, and keep the encoder it was fine-tuned from in its origin; returns the entry."""
    import torch

    import weights as registry
    from face2emoticon.checkpoint import load_generator
    from face2emoticon.encoder import load_encoder
    from face2emoticon.train import hardware
    from landmarks.errors import WeightsError

    weights_dir = weights_dir or registry.WEIGHTS_DIR
    E = load_encoder(run / "encoder.safetensors")
    G = load_generator(generator)
    if E.cfg.num_ws != G.num_ws or tuple(E.cfg.class_names) != tuple(G.cfg.class_names):
        raise WeightsError(f"{run} holds an encoder for another generator than {generator}")
    trained_on = json.loads((run / "options.json").read_text())
    if trained_on["generator"] != json.loads(json.dumps(G.cfg.to_json())):
        raise WeightsError(f"{run} was trained on a generator of another shape than {generator}")
    g_sha = registry.sha256_of(generator)
    if trained_on.get("generator_sha256") and trained_on["generator_sha256"] != g_sha:
        raise WeightsError(f"{run} was trained on the generator with sha256 {trained_on['generator_sha256'][:12]}, "
                           f"not {generator} ({g_sha[:12]}); ship that generator first, or retrain the encoder")
    entries = registry.load_registry(weights_dir / "registry.json")
    previous = entries.get(name)
    info = json.loads((run / "encoder.json").read_text())
    log_rows = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines() if x.strip()]
    log_name = f"{name}.retargeted.log.jsonl"
    shutil.copyfile(run / "log.jsonl", weights_dir / log_name)
    for ext in (".safetensors", ".json"):
        shutil.copyfile(run / f"encoder{ext}", weights_dir / f"{name}{ext}")
    origin = {
        "command": info["command"],
        "generator_sha256": g_sha,
        "data": f"generator samples of {generator} (sha256 {g_sha}), truncation psi ~ "
                f"U({trained_on['options']['truncation_min']}, 1)",
        "steps": info["steps"],
        "wall_time_s": log_rows[-1]["seconds"] if log_rows else None,
        "hardware": hardware(torch.device("cpu")),
        "log": log_name,
        "recipe": "python -m face2emoticon.recipes.default train-encoder, then ship-encoder",
    }
    if previous is not None:
        origin["init"] = {"sha256": previous.sha256, "origin": previous.origin}
    metrics = {"heldout_generator_samples": {"n": trained_on["options"]["val_size"],
                                             **{k: round(v, 4) for k, v in info["val"].items()}}}
    entry = registry.register(
        name, weights_dir / f"{name}.safetensors", kind="encoder", licence=previous.licence if previous else
        f"trained on samples of {NAME}, itself {training_licence()}", origin=origin, metrics=metrics,
        description=f"in-domain inversion encoder (image -> W+) for {NAME}: the inversion's start point",
        registry_path=weights_dir / "registry.json")
    return entry.to_json()


def ship(run: Path, *, name: str = NAME, data: Path = Path("data"), weights_dir: Path | None = None,
         metrics: dict | None = None, stage: int = 1) -> dict:
    """Copy ``run``'s EMA generator, its discriminator (if the run exported one) and its log into ``weights/`` as
    ``name`` and register them; returns the generator's entry. ``stage`` 2 keeps stage 1's log beside its own."""
    import weights as registry
    from face2emoticon.checkpoint import load_discriminator, load_generator
    from face2emoticon.styles import STYLE_NAMES

    weights_dir = weights_dir or registry.WEIGHTS_DIR
    src = run / "G_ema.safetensors"
    _check_classes(load_generator(src), src)  # strict: refuses a half-written or mismatched file
    info = json.loads((run / "G_ema.json").read_text())
    dst = weights_dir / f"{name}.safetensors"
    d_name = f"{name}-D"
    has_d = (run / "D.safetensors").exists()
    if has_d:
        load_discriminator(run / "D.safetensors")  # strict, like the generator
        shutil.copyfile(run / "D.safetensors", weights_dir / f"{d_name}.safetensors")
        shutil.copyfile(run / "D.json", weights_dir / f"{d_name}.json")
        info["discriminator"] = f"{d_name}.safetensors"
    else:
        info.pop("discriminator", None)
    shutil.copyfile(src, dst)
    log_name = f"{name}.log.jsonl" if stage == 1 else f"{name}.continued.log.jsonl"
    origin = dict(info.get("origin") or {})
    if (run / "log.jsonl").exists():
        shutil.copyfile(run / "log.jsonl", weights_dir / log_name)
    if stage == 1:
        command = _command(TRAIN_ARGS, json.loads((run / "config.json").read_text())["options"].get("minutes"))
    else:  # the trainer records its last invocation
        command = origin.get("command") or _command(CONTINUE_ARGS)
    origin.update({
        "command": command,
        "recipe": "python -m face2emoticon.recipes.default (see its docstring)",
        **_data_origin(origin, data),
        "log": log_name if stage == 1 else f"{name}.log.jsonl (stage 1), {log_name} (stage 2)",
    })
    if stage == 2:
        _stage2_origin(origin)
    if has_d:
        origin["discriminator"] = d_name
    info["origin"] = origin
    dst.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    if has_d:
        registry.register(
            d_name, weights_dir / f"{d_name}.safetensors", kind="discriminator", licence=training_licence(),
            origin={k: v for k, v in origin.items() if k != "discriminator"} | {"generator": name},
            description=f"the discriminator {name} was trained against: fine-tune or train {name} further with "
                        f"`emoget train-gan --base weights/{name}.safetensors`",
            registry_path=weights_dir / "registry.json")
    entry = registry.register(
        name, dst, kind="generator", licence=training_licence(), origin=origin, metrics=metrics,
        description=f"conditional StyleGAN2, 64 px, classes: {', '.join(STYLE_NAMES)}",
        registry_path=weights_dir / "registry.json")
    return entry.to_json()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m face2emoticon.recipes.default", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", required=True)
    t = sub.add_parser("train", help="start or resume the default run (foreground; wrap in setsid nohup ... &)")
    t.add_argument("--minutes", type=float, default=90.0)
    t.add_argument("--stage", type=int, choices=(1, 2), default=1)
    s = sub.add_parser("ship", help="copy the run's EMA generator (and D) into weights/ and register them")
    s.add_argument("--stage", type=int, choices=(1, 2), default=1)
    s.add_argument("--run", type=Path, default=None, help="default: the stage's run folder")
    s.add_argument("--data", type=Path, default=Path("data"))
    s.add_argument("--name", default=NAME)
    e = sub.add_parser("train-encoder", help="fine-tune the shipped encoder on a generator's samples")
    e.add_argument("--generator", type=Path, default=Path(f"weights/{NAME}.safetensors"))
    e.add_argument("--steps", type=int, default=1500)
    se = sub.add_parser("ship-encoder", help="copy the fine-tuned encoder into weights/ and register it")
    se.add_argument("--generator", type=Path, default=Path(f"weights/{NAME}.safetensors"))
    se.add_argument("--run", type=Path, default=ENCODER_RUN)
    k = sub.add_parser("keep", help="keep stage 2's run (G_ema + D + config + log + figures) as a registered training "
                                    "checkpoint under weights/training/, not the default")
    k.add_argument("--run", type=Path, default=CONTINUE_RUN)
    k.add_argument("--data", type=Path, default=Path("data"))
    k.add_argument("--name", default=KEPT)
    k.add_argument("--figures", type=Path, default=None, help="the run's figures JSON (recipes.figures --out)")
    args = p.parse_args(argv)
    emoget = str(Path(sys.executable).with_name("emoget"))
    if args.action == "train":
        stage_args = TRAIN_ARGS
        if args.stage == 2:
            resumable = (CONTINUE_RUN / "checkpoint" / "state.safetensors").exists() or not CHECKPOINT.exists()
            stage_args = CONTINUE_ARGS if resumable else FROM_CHECKPOINT_ARGS
        return subprocess.call([emoget, "train-gan", *stage_args, "--minutes", str(args.minutes)])
    if args.action == "train-encoder":
        return subprocess.call([emoget, "train-encoder", *encoder_args(args.generator, args.steps)])
    if args.action == "ship-encoder":
        entry = ship_encoder(args.run, args.generator)
    elif args.action == "keep":
        entry = keep(args.run, name=args.name, data=args.data, figures=args.figures)
    else:
        run = args.run or (RUN if args.stage == 1 else CONTINUE_RUN)
        entry = ship(run, name=args.name, data=args.data, stage=args.stage)
    print(f"registered {entry['name']}: {entry['path']} {entry['size'] / 1e6:.2f} MB, "
          f"step {entry['origin'].get('steps')}, sha256 {entry['sha256'][:12]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
