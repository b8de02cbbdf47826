"""Paired fine-tuning: a conditional generator and its encoder learn to draw the style renders themselves.

Adversarial training on a CPU budget leaves the generator far from its data: held-out renders inverted
into it come back as soft blobs, and so does every photo. The style data has what adversarial training
never uses: every identity is drawn in every style (same skin tone, hair colour and length, glasses,
beard). This stage trains the generator's synthesis network and the encoder together on it:

* **reconstruction** — ``x_a`` (identity ``i`` in style ``a``) → ``ws = E(x_a, a)`` → ``G.synthesis(ws)``
  must be ``x_a``: L1 + LPIPS-alex. The generator learns to draw crisp renders from the latents the
  encoder gives, and the encoder learns to give them (the inversion's start point).
* **the same person in another style** — the pipeline renders style ``b`` as
  ``w_b = mean_w(b) + (1 - s) * (ws - mean_w(a))`` (:class:`ui.pipeline.GanStylizer`, strength ``s``);
  that image must match ``x_b``, the same identity drawn in style ``b``, in its coarse layout: L1 between
  both images average-pooled to ``cross_size`` px. Haircuts and clothes are drawn per style (they differ
  between ``x_a`` and ``x_b``), so only the coarse colours and shapes — skin, hair colour and length, beard,
  glasses — are asked for.

The mapping network stays fixed, so every class's mean w (and so the pipeline's rendering rule) keeps its
meaning. The last ``holdout`` identities are never trained on; validation scores them.

Run folder::

    RUN/config.json                    options, command, data manifest hash, the starting weights' sha256
    RUN/log.jsonl                      losses every ``log_every`` steps; ``{"step", "val": {...}}`` lines
    RUN/checkpoint/state.safetensors   G + E + both Adams + bookkeeping (resume), written atomically
    RUN/G.safetensors (+ .json)        the generator to ship
    RUN/encoder.safetensors (+ .json)  its encoder
    RUN/samples/step-0000500.png       held-out identities: each row the input, its reconstruction, and the
                                       person rendered in every style
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from face2emoticon import checkpoint as ckpt
from face2emoticon.dataset import DatasetError, ImageDataset, load_dataset, paired_index
from face2emoticon.encoder import load_encoder, save_encoder
from face2emoticon.lpips import get_lpips, resize_for_lpips
from face2emoticon.runloop import (
    append_jsonl,
    check_resume_options,
    hardware,
    run_steps,
    truncate_log,
)
from landmarks.errors import EmogetError, WeightsError

log = logging.getLogger(__name__)


def _opt(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True)
class PairedTrainOptions:
    """Options of ``emoget train-paired``; ``steps`` also sets the cosine learning-rate schedule."""

    steps: int = _opt(6000, "training steps (the learning rates decay to lr_min_ratio x over them)")
    minutes: float | None = _opt(None, "stop after this many minutes of this invocation (checkpointed; re-run "
                                       "resumes)", type=float)
    batch: int = _opt(8, "identities per step")
    g_lr: float = _opt(1e-3, "Adam learning rate of the generator's synthesis network")
    e_lr: float = _opt(5e-4, "Adam learning rate of the encoder")
    lr_min_ratio: float = _opt(0.1, "both learning rates at the last step, as a fraction of the first (cosine)")
    l1_weight: float = _opt(1.0, "weight of the reconstruction L1")
    lpips_weight: float = _opt(1.0, "weight of the reconstruction LPIPS-alex")
    cross_weight: float = _opt(1.0, "weight of the cross-style L1 at cross_size px (0 = off, a step ~30%% cheaper)")
    cross_size: int = _opt(8, "side in px both images are average-pooled to for the cross-style term")
    strength_max: float = _opt(0.5, "the cross-style term's strength s is drawn from U(0, this)")
    holdout: int = _opt(50, "last identities (sorted file names) kept out of training for validation")
    val_identities: int = _opt(16, "held-out identities scored at each validation")
    val_every: int = _opt(500, "score the held-out identities every N steps")
    sample_every: int = _opt(500, "write a sample grid every N steps")
    log_every: int = _opt(50, "append the mean losses to log.jsonl every N steps")
    checkpoint_minutes: float = _opt(5.0, "write the resumable checkpoint every N minutes")
    seed: int = _opt(0, "random seed (identities, styles and strengths of every batch)")
    background: str = _opt("f2f2f2", "RGB hex colour transparent renders are composited over")

    def __post_init__(self):
        if self.batch < 1 or self.steps < 1:
            raise EmogetError("steps and batch must be at least 1")
        if self.cross_size < 1 or not 0 <= self.strength_max <= 1 or not 0 < self.lr_min_ratio <= 1:
            raise EmogetError("cross_size must be >= 1, strength_max in [0, 1] and lr_min_ratio in (0, 1]")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


RESUME_MUTABLE = {"steps", "minutes", "val_every", "sample_every", "log_every", "checkpoint_minutes",
                  "val_identities"}
"""Options that may differ between the first invocation and a resume."""


def cross_ws(ws: torch.Tensor, means: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
             strength: torch.Tensor) -> torch.Tensor:
    """The pipeline's rendering rule: ``ws [B,L,D]`` inverted in classes ``a [B]`` → the latents of classes
    ``b [B]``, ``means[b] + (1 - strength[B]) * (ws - means[a])`` (``means [C,D]``: each class's mean w)."""
    keep = (1.0 - strength).view(-1, 1, 1)
    return means[b][:, None] + keep * (ws - means[a][:, None])


def pooled_l1(x: torch.Tensor, y: torch.Tensor, size: int) -> torch.Tensor:
    """L1 between ``x`` and ``y [B,3,R,R]`` average-pooled to ``size`` px."""
    return (F.adaptive_avg_pool2d(x, size) - F.adaptive_avg_pool2d(y, size)).abs().mean()


@dataclass
class PairedTrainResult:
    step: int
    run_dir: Path
    generator_path: Path
    encoder_path: Path
    wall_time_s: float
    val: dict[str, Any]


class PairedTrainer:
    """One run folder: build from a generator and an encoder (or resume), train, checkpoint atomically."""

    def __init__(self, data: str | os.PathLike | ImageDataset, run_dir: str | os.PathLike, *, generator: str | os.PathLike,
                 encoder: str | os.PathLike, options: PairedTrainOptions, command: str | None = None,
                 index: torch.Tensor | None = None):
        from face2emoticon.checkpoint import load_generator
        from weights import sha256_of

        self.opt = o = options
        self.run_dir = Path(run_dir)
        self.command = command
        self.state_path = self.run_dir / "checkpoint" / "state.safetensors"
        self.G = load_generator(generator)
        self.E = load_encoder(encoder)
        self.start = {"generator": str(generator), "generator_sha256": sha256_of(generator),
                      "encoder": str(encoder), "encoder_sha256": sha256_of(encoder)}
        classes = tuple(self.G.cfg.class_names)
        if not classes or self.E.cfg.c_dim != len(classes):
            raise WeightsError("paired training needs a conditional generator and its conditional encoder "
                               f"(generator classes {classes}, encoder classes {self.E.cfg.c_dim})")
        if isinstance(data, ImageDataset):
            if index is None:
                raise ValueError("an in-memory dataset needs its identity index")
            self.data = data
        else:
            from face2emoticon.train import _parse_rgb

            self.data = load_dataset(data, resolution=self.G.cfg.resolution, background=_parse_rgb(o.background),
                                     cache_dir=self.run_dir / "cache")
            index = paired_index(data)
        if tuple(self.data.class_names) != classes:
            raise DatasetError(f"the data's styles {self.data.class_names} are not the generator's {classes}")
        if index.shape[0] <= o.holdout:
            raise DatasetError(f"{index.shape[0]} identities are drawn in every style, need more than the "
                               f"{o.holdout} held out")
        self.train_index, self.val_index = index[:index.shape[0] - o.holdout], index[index.shape[0] - o.holdout:]
        self.G.train().requires_grad_(False)
        self.G.synthesis.requires_grad_(True)
        self.E.train().requires_grad_(True)
        self.means = self.E.w_avg.detach().clone()  # [C, w_dim] each class's mean w (the mapping is fixed)
        self.opt_g = torch.optim.Adam(self.G.synthesis.parameters(), lr=o.g_lr, betas=(0.0, 0.99))
        self.opt_e = torch.optim.Adam(self.E.parameters(), lr=o.e_lr, betas=(0.9, 0.99))
        self.lpips = get_lpips("alex")
        self.step = 0
        self.wall_time_s = 0.0
        self.last_val: dict[str, Any] = {}
        self.last_val_step = -1

    # ------------------------------------------------------------------------------------- state
    def _modules(self):
        return {"G": self.G, "E": self.E}, {"g": (self.opt_g, self.G), "e": (self.opt_e, self.E)}

    def resume(self) -> bool:
        if not self.state_path.exists():
            return False
        saved = ckpt.read_training_info(self.state_path)
        if "paired_options" not in saved:
            raise EmogetError(f"'{self.state_path}' is not a paired training state; use a new --out folder")
        check_resume_options(self.run_dir, saved["paired_options"], self.opt, RESUME_MUTABLE)
        modules, optimizers = self._modules()
        _, info = ckpt.load_training_state(self.state_path, modules=modules, optimizers=optimizers)
        self.step, self.wall_time_s = int(info["step"]), float(info["wall_time_s"])
        truncate_log(self.run_dir / "log.jsonl", self.step)
        log.info("resumed %s at step %d", self.run_dir, self.step)
        return True

    def origin(self) -> dict[str, Any]:
        return {"command": self.command, "data_manifest_sha256": self.data.manifest_sha256, "steps": self.step,
                "kimg": round(self.step * self.opt.batch / 1000, 3), "wall_time_s": round(self.wall_time_s, 1),
                "hardware": hardware(), "paired_options": self.opt.to_json(), "start": self.start}

    def save(self) -> tuple[Path, Path]:
        modules, optimizers = self._modules()
        ckpt.save_training_state(self.state_path, modules=modules, optimizers=optimizers, rng={},
                                 info={"step": self.step, "wall_time_s": self.wall_time_s,
                                       "paired_options": self.opt.to_json()})
        extra = {"origin": self.origin(), "val": self.last_val}
        g = ckpt.save_generator(self.G, self.run_dir / "G", extra=extra)
        e = save_encoder(self.E, self.run_dir / "encoder", extra=extra)
        return g, e

    # ------------------------------------------------------------------------------------- steps
    def lr_scale(self, step: int) -> float:
        t = min(step / max(self.opt.steps, 1), 1.0)
        r = self.opt.lr_min_ratio
        return r + 0.5 * (1 - r) * (1 + math.cos(math.pi * t))

    def batch(self, step: int, index: torch.Tensor | None = None):
        """``(x_a, a, x_b, b, strength)`` of ``step``: a pure function of (seed, step). ``x [B,3,R,R]`` in
        ``[-1,1]``; ``a``, ``b`` ``[B]`` distinct styles of the same identities; ``strength [B]``."""
        o = self.opt
        index = self.train_index if index is None else index
        g = torch.Generator().manual_seed(o.seed * 1_000_003 + step)
        n, c = index.shape
        ids = torch.randint(n, (o.batch,), generator=g)
        a = torch.randint(c, (o.batch,), generator=g)
        b = (a + torch.randint(1, c, (o.batch,), generator=g)) % c if c > 1 else a.clone()
        strength = torch.rand(o.batch, generator=g) * o.strength_max
        return self._images(index[ids, a]), a, self._images(index[ids, b]), b, strength

    def _images(self, rows: torch.Tensor) -> torch.Tensor:
        return self.data.images[rows].float() / 127.5 - 1

    def losses(self, x_a, a, x_b, b, strength) -> dict[str, torch.Tensor]:
        """The terms (batch means): ``l1`` and ``lpips`` of the reconstruction, ``cross`` (pooled L1)."""
        ws = self.E(x_a, a)
        rec = self.G.synthesis(ws, noise_mode="const")
        terms = {"l1": (rec - x_a).abs().mean(),
                 "lpips": self.lpips(resize_for_lpips(rec), resize_for_lpips(x_a)).mean()}
        if self.opt.cross_weight:
            other = self.G.synthesis(cross_ws(ws, self.means, a, b, strength), noise_mode="const")
            terms["cross"] = pooled_l1(other, x_b, self.opt.cross_size)
        return terms

    def train_step(self) -> dict[str, float]:
        o = self.opt
        scale = self.lr_scale(self.step)
        for opt, lr in ((self.opt_g, o.g_lr), (self.opt_e, o.e_lr)):
            for group in opt.param_groups:
                group["lr"] = lr * scale
        self.G.synthesis.train()
        self.E.train()
        terms = self.losses(*self.batch(self.step))
        weights = {"l1": o.l1_weight, "lpips": o.lpips_weight, "cross": o.cross_weight}
        loss = sum(weights[k] * v for k, v in terms.items())
        if not math.isfinite(float(loss.detach())):
            raise FloatingPointError(f"paired loss became {float(loss)} at step {self.step}; lower --g-lr/--e-lr "
                                     "and resume from the last checkpoint")
        self.opt_g.zero_grad(set_to_none=True)
        self.opt_e.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        self.opt_e.step()
        self.step += 1
        return {**{k: float(v.detach()) for k, v in terms.items()}, "loss": float(loss.detach())}

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Held-out identities, every one in every style: reconstruction L1, LPIPS, PSNR; cross-style pooled L1
        at strength 0 and at the pipeline's default 0.25."""
        self.G.eval()
        self.E.eval()
        index = self.val_index[:self.opt.val_identities]
        n, c = index.shape
        sums: dict[str, float] = {}
        for style in range(c):
            x = self._images(index[:, style])
            a = torch.full((n,), style, dtype=torch.long)
            ws = self.E(x, a)
            rec = self.G.synthesis(ws, noise_mode="const")
            mse = ((rec.clamp(-1, 1) - x) ** 2).flatten(1).mean(1)
            parts = {"l1": (rec - x).abs().mean(), "lpips": self.lpips(resize_for_lpips(rec), resize_for_lpips(x)).mean(),
                     "psnr": (10 * torch.log10(4.0 / mse.clamp_min(1e-10))).mean()}
            for other in range(c):
                if other == style:
                    continue
                b = torch.full((n,), other, dtype=torch.long)
                for s in (0.0, 0.25):
                    y = self.G.synthesis(cross_ws(ws, self.means, a, b, torch.full((n,), s)), noise_mode="const")
                    key = f"cross_s{s:g}"
                    parts[key] = parts.get(key, 0.0) + pooled_l1(y, self._images(index[:, other]),
                                                                  self.opt.cross_size) / (c - 1)
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v) / c
        self.last_val = {k: round(v, 5) for k, v in sums.items()}
        self.last_val_step = self.step
        return self.last_val

    @torch.no_grad()
    def sample_grid(self, identities: int = 6) -> np.ndarray:
        """uint8 grid, one row per held-out identity (each in a different input style): input, reconstruction,
        then the person in every style at strength 0.25 (64 px each)."""
        self.G.eval()
        self.E.eval()
        n, c = self.val_index.shape
        rows = []
        for i in range(min(identities, n)):
            style = i % c
            x = self._images(self.val_index[i:i + 1, style])
            a = torch.tensor([style])
            ws = self.E(x, a)
            tiles = [x, self.G.synthesis(ws, noise_mode="const")]
            for b in range(c):
                tiles.append(self.G.synthesis(cross_ws(ws, self.means, a, torch.tensor([b]), torch.tensor([0.25])),
                                              noise_mode="const"))
            rows.append(torch.cat(tiles, dim=3))
        grid = torch.cat(rows, dim=2)[0]
        return ((grid.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()

    def write_samples(self) -> Path:
        from PIL import Image

        path = self.run_dir / "samples" / f"step-{self.step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(self.sample_grid()).save(path)
        return path

    def run(self, *, on_step: Callable[[int], None] | None = None) -> PairedTrainResult:
        """Resume if possible, then train to ``steps``; stops at ``minutes``, Ctrl-C or SIGTERM (checkpointed)."""
        o = self.opt
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if not self.resume():
            ckpt.atomic_write_text(self.run_dir / "config.json", json.dumps(
                {"options": o.to_json(), "command": self.command, "start": self.start,
                 "data_manifest_sha256": self.data.manifest_sha256}, indent=2) + "\n")
        log_path = self.run_dir / "log.jsonl"
        _, interrupted = run_steps(
            self, log_path=log_path, steps=o.steps, batch=o.batch, minutes=o.minutes, log_every=o.log_every,
            val_every=o.val_every, sample_every=o.sample_every, checkpoint_minutes=o.checkpoint_minutes,
            validate=self.validate, log_extra=lambda step: {"lr_scale": round(self.lr_scale(step), 5)},
            on_step=on_step)
        if not interrupted and self.last_val_step != self.step:
            append_jsonl(log_path, {"step": self.step, "val": self.validate()})
        g, e = self.save()
        if interrupted:
            raise KeyboardInterrupt
        return PairedTrainResult(step=self.step, run_dir=self.run_dir, generator_path=g, encoder_path=e,
                                 wall_time_s=self.wall_time_s, val=self.last_val)


def train_paired(data, run_dir, *, generator, encoder, options: PairedTrainOptions | None = None,
                 command: str | None = None, on_step: Callable[[int], None] | None = None) -> PairedTrainResult:
    """Train (or resume) a paired fine-tune; see the module docstring for what is trained and the run folder."""
    trainer = PairedTrainer(data, run_dir, generator=generator, encoder=encoder,
                            options=options or PairedTrainOptions(), command=command)
    return trainer.run(on_step=on_step)
