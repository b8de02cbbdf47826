"""Train the MoCoGAN-style motion model on the expression prior's sequences, and measure it.

Recipe (``emoget train-motion``; defaults ship as ``weights/motion-mocogan-68``):

* data: ``n_train`` looping sequences from :func:`video_gen.prior.sample_dataset`
  (seed ``seed``), balanced over the registry's expressions, intensities in [0.4, 1];
* generator :class:`~video_gen.motion.MotionGenerator` against a frame discriminator
  (a random frame, class-projected) and a sequence discriminator (temporal convolutions,
  class-projected), non-saturating GAN losses, Adam (2e-4, betas 0.5/0.999);
* two light helpers on the generator: per-class moment matching (mean and spread of the
  batch's displacement trajectories, weight ``mm_weight``) which keeps the tiny adversarial
  game on target on a CPU budget, and a penalty on the recurrent drift at row T
  (``close_weight``), so the exact loop closure the generator applies moves little;
  optionally a mode-seeking term (``ms_weight``, Mao et al. 2019): for the same face, expression
  and intensity, the ratio of the noises' distance to the motions' distance is minimised, so
  different seeds give different takes.

:func:`evaluate` reports the figures the issue asks for: a classifier trained on held-out
prior sequences recognises the generated expression; diversity between seeds; mean jerk
against the prior's; loop closure at 256 px.
"""
from __future__ import annotations

import logging
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from video_gen import metrics
from video_gen.classifier import accuracy, train_classifier
from video_gen.expressions import EXPRESSIONS
from video_gen.motion import (
    FrameDiscriminator,
    MotionConfig,
    MotionGenerator,
    SequenceDiscriminator,
    generate,
    save_motion_model,
)
from video_gen.prior import sample_content, sample_dataset, sample_sequence

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Training run options (saved in the registry entry's origin)."""

    steps: int = 3000
    batch: int = 128
    n_train: int = 12000
    lr: float = 2e-4
    mm_weight: float = 5.0
    close_weight: float = 30.0
    ms_weight: float = 0.0  # mode seeking (MSGAN): two noises for the same face must give different motion
    frames: int = 16
    seed: int = 0
    eval_seed: int = 1000  # held-out prior sequences for the classifier and the reference figures


def _moments(x: torch.Tensor, onehot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class mean and std of ``x [B,D]`` (classes absent from the batch get zeros)."""
    count = onehot.sum(0).clamp(min=1)[:, None]
    mean = onehot.T @ x / count
    var = onehot.T @ (x * x) / count - mean * mean
    return mean, var.clamp(min=0).add(1e-8).sqrt()


def train(cfg: TrainConfig = TrainConfig(), *, arch: MotionConfig | None = None, data=None,
          progress: bool = False) -> tuple[MotionGenerator, dict]:
    """Train a generator; returns it (eval mode) and a log dict (losses, wall time)."""
    names = list(EXPRESSIONS)
    arch = arch or MotionConfig(class_names=tuple(names), frames=cfg.frames)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    t0 = time.perf_counter()
    if data is None:
        data = sample_dataset(cfg.n_train, frames=cfg.frames, rng=cfg.seed, names=list(arch.class_names))
    content, disp, label, inten = (torch.as_tensor(a) for a in data)
    log.info("prior data: %d sequences in %.1f s", len(label), time.perf_counter() - t0)
    G, DF, DS = MotionGenerator(arch), FrameDiscriminator(arch), SequenceDiscriminator(arch)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(list(DF.parameters()) + list(DS.parameters()), lr=cfg.lr, betas=(0.5, 0.999))
    k = arch.num_classes
    hist = []
    for step in range(cfg.steps):
        idx = torch.randint(0, len(label), (cfg.batch,), generator=gen)
        c, real, y, it = content[idx], disp[idx], label[idx], inten[idx]
        eps, z = G.sample_noise(cfg.batch, generator=gen)
        raw = G.raw(c, y, it, eps, z)
        ramp = torch.linspace(0.0, 1.0, cfg.frames + 1)[None, :, None, None]
        fake = raw - ramp * raw[:, -1:]
        t = torch.randint(1, cfg.frames + 1, (cfg.batch,), generator=gen)
        ar = torch.arange(cfg.batch)
        # discriminators
        d_loss = (F.softplus(-DF(c, real[ar, t], y, it)).mean() + F.softplus(DF(c, fake.detach()[ar, t], y, it)).mean()
                  + F.softplus(-DS(c, real, y, it)).mean() + F.softplus(DS(c, fake.detach(), y, it)).mean())
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        # generator
        adv = F.softplus(-DF(c, fake[ar, t], y, it)).mean() + F.softplus(-DS(c, fake, y, it)).mean()
        onehot = F.one_hot(y, k).float()
        fm, fs = _moments(fake.reshape(cfg.batch, -1) * 10, onehot)
        rm, rs = _moments(real.reshape(cfg.batch, -1) * 10, onehot)
        mm = (fm - rm).pow(2).mean() + (fs - rs).pow(2).mean()
        close = (raw[:, -1] * 10).pow(2).mean()
        g_loss = adv + cfg.mm_weight * mm + cfg.close_weight * close
        if cfg.ms_weight:
            eps2, z2 = G.sample_noise(cfg.batch, generator=gen)
            raw2 = G.raw(c, y, it, eps2, z2)
            apart = ((raw - ramp * raw[:, -1:]) - (raw2 - ramp * raw2[:, -1:])).abs().mean((1, 2, 3)) * 10
            noise_apart = (eps - eps2).abs().mean((1, 2)) + (z - z2).abs().mean(1)
            g_loss = g_loss + cfg.ms_weight * (noise_apart / (apart + 1e-3)).mean()
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        if step % 100 == 0 or step == cfg.steps - 1:
            hist.append({"step": step, "d": round(d_loss.item(), 4), "adv": round(adv.item(), 4), "mm": round(mm.item(), 5),
                             "close": round(close.item(), 6)})
            msg = f"step {step:5d}  D {d_loss.item():.3f}  G adv {adv.item():.3f}  mm {mm.item():.4f}  close {close.item():.5f}"
            log.info(msg)
            if progress:
                print(msg, flush=True)
    wall = time.perf_counter() - t0
    return G.eval().requires_grad_(False), {"history": hist, "wall_time_s": round(wall, 1)}


def evaluate(G: MotionGenerator, *, seed: int = 1000, n_classifier: int = 4000, n_eval: int = 400,
             takes: int = 8, groups_per_class: int = 4) -> dict:
    """The figures for ``G``: recognition accuracy, diversity, jerk, loop closure (see module doc)."""
    names = list(G.cfg.class_names)
    T = G.cfg.frames
    rng = np.random.default_rng(seed)
    c_tr, d_tr, y_tr, _ = sample_dataset(n_classifier, frames=T, rng=rng, names=names)
    clf = train_classifier(c_tr, d_tr, y_tr, num_classes=len(names), seed=seed)
    c_te, d_te, y_te, i_te = sample_dataset(n_eval, frames=T, rng=rng, names=names)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        eps, z = G.sample_noise(n_eval, generator=gen)
        args = (torch.as_tensor(c_te), torch.as_tensor(y_te), torch.as_tensor(i_te), eps, z)
        fake = G(*args).numpy()
        drift = metrics.loop_closure(G.raw(*args).numpy())
    pred_per_class = {}
    with torch.no_grad():
        pred = clf(torch.as_tensor(c_te), torch.as_tensor(fake)).argmax(1).numpy()
    for i, n in enumerate(names):
        m = y_te == i
        pred_per_class[n] = round(float((pred[m] == i).mean()), 3) if m.any() else None
    # diversity: several takes of the same face / expression / intensity
    gen_groups, prior_groups = [], []
    for ci, n in enumerate(names):
        for g in range(groups_per_class):
            face = sample_content(rng)
            inten = float(rng.uniform(0.6, 1.0))
            gen_groups.append(generate(G, face, n, intensity=inten, seed=seed + 97 * ci + g, n=takes))
            prior_groups.append(np.stack([sample_sequence(n, frames=T, intensity=inten, rng=rng, content=face)
                                          for _ in range(takes)]))
    closure = metrics.loop_closure(fake)
    return {
        "classifier_accuracy_prior_heldout": round(accuracy(clf, c_te, d_te, y_te), 4),
        "classifier_accuracy_generated": round(float((pred == y_te).mean()), 4),
        "classifier_accuracy_generated_per_class": pred_per_class,
        "diversity_px_generated": round(metrics.diversity(gen_groups), 3),
        "diversity_px_prior": round(metrics.diversity(prior_groups), 3),
        "jerk_px_generated": round(metrics.jerk(fake), 4),
        "jerk_px_prior": round(metrics.jerk(d_te), 4),
        "amplitude_px_generated": round(metrics.amplitude(fake), 3),
        "amplitude_px_prior": round(metrics.amplitude(d_te), 3),
        "loop_closure_px_mean": round(float(closure.mean()), 4),
        "loop_closure_px_max": round(float(closure.max()), 4),
        "recurrent_drift_px_mean": round(float(drift.mean()), 4),  # before the output spreads it over the loop
        "recurrent_drift_px_max": round(float(drift.max()), 4),
        "eval": {"seed": seed, "n_classifier": n_classifier, "n_eval": n_eval, "takes": takes, "px_per_unit_256": metrics.PX_PER_UNIT_256},
    }


def train_and_ship(out: str | Path, *, cfg: TrainConfig = TrainConfig(), name: str | None = "motion-mocogan-68",
                   command: str = "emoget train-motion", progress: bool = False) -> dict:
    """Train, evaluate, save ``out`` (+ JSON) and (with ``name``) register it in ``weights/registry.json``."""
    torch.set_num_threads(1)
    G, log_ = train(cfg, progress=progress)
    path = save_motion_model(G, out)
    figs = evaluate(G, seed=cfg.eval_seed)
    result = {"path": str(path), "train": log_, "metrics": figs}
    if name:
        import hashlib
        import json

        import weights

        manifest = json.dumps({"prior": "video_gen/data/au_basis68.npz", "n": cfg.n_train, "seed": cfg.seed,
                                   "frames": cfg.frames, "expressions": list(G.cfg.class_names)}, sort_keys=True)
        basis_sha = weights.sha256_of(Path(__file__).resolve().parent / "data" / "au_basis68.npz")
        weights.register(
            name, path, kind="motion", licence="Apache-2.0 (trained here on sequences from py-feat's MIT-licensed "
            "AU-to-mesh model)",
            description="MoCoGAN-style landmark motion (GRU generator, frame + sequence discriminators), 8 expressions",
            origin={"command": command, "data": f"expression prior sequences ({cfg.n_train}, seed {cfg.seed}) from "
                        f"py-feat 2.1.5 au_to_mesh_pls_v4.npz via landmarks.mesh68 (basis sha256 {basis_sha[:16]})",
                        "data_manifest_sha256": hashlib.sha256(manifest.encode()).hexdigest(), "steps": cfg.steps,
                        "wall_time_s": log_["wall_time_s"], "hardware": f"CPU ({platform.machine()}), 1 thread",
                        "train_config": asdict(cfg)},
            metrics={k: v for k, v in figs.items() if k != "eval"} | {"eval": figs["eval"]},
        )
    return result
