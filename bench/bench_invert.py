"""Inversion benchmark: quality vs steps from the mean w and from the encoder; seconds per step.

On held-out generator samples (known w): LPIPS-alex and PSNR after N optimisation steps, for the
mean-w start and the encoder start, with Adam (the projector's schedule; each N its own run, the
schedule spans N) and with L-BFGS (every loss-and-gradient evaluation counted as a step).
Target: the encoder start reaches the mean start's (Adam) 300-step LPIPS within 50 steps.

Uses the shipped generator and encoder when they are registered; otherwise (or with
``--toy``) a randomly initialised 64 px toy generator and an encoder trained on it here, for
a few hundred steps -- the figures then describe the machinery, not the shipped model.
Seconds per step are measured for the default architecture at 64 and 128 px.

``python bench/bench_invert.py [--generator G.safetensors] [--encoder E.safetensors] [--samples 3]``
"""
from __future__ import annotations

import argparse
import logging
import tempfile
import time

import torch

from face2emoticon.config import GeneratorConfig
from face2emoticon.encoder import EncoderTrainOptions, load_encoder, train_encoder
from face2emoticon.invert import invert, psnr
from face2emoticon.lpips import lpips_distance
from face2emoticon.networks import Generator

BUDGETS = (0, 10, 25, 50, 100, 300)
TOY = {"resolution": 64, "z_dim": 128, "w_dim": 128, "channel_base": 2048, "channel_max": 64,
       "class_names": ("a", "b")}


def seconds_per_step(resolution: int, *, steps: int = 8) -> float:
    G = Generator(GeneratorConfig(resolution=resolution, class_names=("a", "b")), seed=0)
    ws = G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(1)), torch.tensor([0]))
    with torch.no_grad():
        target = G.synthesis(ws)
    invert(G, target, class_index=0, num_steps=2)  # warm-up
    t0 = time.perf_counter()
    invert(G, target, class_index=0, num_steps=steps)
    return (time.perf_counter() - t0) / steps


def _models(args) -> tuple[Generator, object, str]:
    if args.generator:
        from face2emoticon.checkpoint import load_generator

        G = load_generator(args.generator)
        E = load_encoder(args.encoder) if args.encoder else None
        what = f"generator {args.generator}"
    else:
        import weights

        reg = weights.load_registry()
        if not args.toy and "stylegan2-emoget-64" in reg and "encoder-emoget-64" in reg:
            from face2emoticon.checkpoint import load_generator

            G = load_generator(weights.path_of("stylegan2-emoget-64"))
            E = load_encoder(weights.path_of("encoder-emoget-64"))
            what = "shipped generator stylegan2-emoget-64 + encoder-emoget-64"
        else:
            G = Generator(GeneratorConfig(**TOY), seed=0).eval()
            E = None
            what = "TOY: randomly initialised 64 px generator (no shipped one registered)"
    if E is None:
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            res = train_encoder(G, tmp, options=EncoderTrainOptions(
                steps=args.encoder_steps, batch_size=8, lr=1e-3, channel_base=2048, channel_max=64, log_every=10**9,
                val_size=8))
            E = load_encoder(res.encoder_path)
        what += f"; encoder trained here for {args.encoder_steps} steps in {time.perf_counter() - t0:.0f} s"
    return G, E, what


STARTS = (("mean", "adam"), ("encoder", "adam"), ("encoder", "lbfgs"), ("mean", "lbfgs"))
"""(start, optimizer): the projector recipe (Adam) from each start, and L-BFGS, which is what makes a close
start pay off; L-BFGS from the mean is measured too, so the comparison is like for like."""


def quality(G, E, *, samples: int, budgets=BUDGETS, starts=STARTS) -> dict[tuple[str, str, int], tuple[float, float]]:
    """Mean (LPIPS-alex, PSNR dB) over held-out samples for each (start, optimizer, steps)."""
    g = torch.Generator().manual_seed(2024)  # disjoint from the encoder's training seeds
    out: dict[tuple[str, str, int], list[tuple[float, float]]] = {}
    for i in range(samples):
        k = i % max(G.c_dim, 1) if G.c_dim else None
        z = torch.randn(1, G.z_dim, generator=g)
        with torch.no_grad():
            ws = G.mapping(z, torch.tensor([k]) if G.c_dim else None, truncation_psi=0.8)
            target = G.synthesis(ws, noise_mode="const")
        for start, optimizer in starts:
            for n in budgets:
                r = invert(G, target, class_index=k, num_steps=n, start=start, encoder=E, optimizer=optimizer,
                           generator=torch.Generator().manual_seed(i))
                out.setdefault((start, optimizer, n), []).append(
                    (lpips_distance(r.image, target).item(), psnr(r.image, target).item()))
    return {key: (sum(v[0] for v in vals) / len(vals), sum(v[1] for v in vals) / len(vals))
            for key, vals in out.items()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--generator", help="a generator checkpoint instead of the shipped/toy one")
    p.add_argument("--encoder", help="its encoder (default: train one here)")
    p.add_argument("--toy", action="store_true", help="use the toy generator even if shipped weights exist")
    p.add_argument("--samples", type=int, default=3)
    p.add_argument("--encoder-steps", type=int, default=300)
    args = p.parse_args(argv or [])
    torch.set_num_threads(1)
    logging.getLogger("face2emoticon").setLevel(logging.WARNING)

    for res in (64, 128):
        print(f"seconds per inversion step, default architecture, {res} px, 1 thread: "
              f"{seconds_per_step(res):.3f} s", flush=True)

    G, E, what = _models(args)
    print(f"models: {what}", flush=True)
    t0 = time.perf_counter()
    q = quality(G, E, samples=args.samples)
    print(f"held-out samples: {args.samples} ({time.perf_counter() - t0:.0f} s); LPIPS-alex / PSNR dB")
    print(f"{'steps':>6} | " + " | ".join(f"{s + ', ' + o:>19}" for s, o in STARTS))
    for n in BUDGETS:
        print(f"{n:>6} | " + " | ".join(f"{q[(s, o, n)][0]:11.5f} {q[(s, o, n)][1]:6.2f}" for s, o in STARTS))
    ref = q[("mean", "adam", 300)][0]
    for optimizer in ("adam", "lbfgs"):
        first = _first_reaching(q, ("encoder", optimizer), ref)
        verdict = "MET" if first is not None and first <= 50 else "NOT MET"
        detail = f"first budget that reaches it: {first}" if first is not None else "no budget reaches it"
        if first:
            detail += f" ({300 / first:.0f}x fewer steps than the mean start)"
        print(f"target (encoder start, {optimizer}, reaches the mean start's 300-step LPIPS {ref:.5f} within 50 "
              f"steps): {verdict}; {detail}")
    ref_lbfgs = q[("mean", "lbfgs", 300)][0]
    first = _first_reaching(q, ("encoder", "lbfgs"), ref_lbfgs)
    print(f"like for like (L-BFGS from both starts): the mean start's 300-step LPIPS {ref_lbfgs:.5f} is reached "
          f"from the encoder at {first if first is not None else 'no budget'}")


def _first_reaching(q, start_optimizer: tuple[str, str], ref: float) -> int | None:
    """The smallest budget at which ``start_optimizer``'s mean LPIPS is at most ``ref`` (None: none is)."""
    return next((n for n in BUDGETS if q[(*start_optimizer, n)][0] <= ref), None)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
