"""Train the conditional StyleGAN2 on a class-folder dataset: ``emoget train-gan DATA --out RUN``.

Loss: non-saturating logistic, lazy R1 on reals (every ``r1_interval`` steps, scaled by the interval), style
mixing regularisation, EMA generator with ramp-up, adaptive augmentation (:mod:`face2emoticon.augment`).
bf16 autocast on CPU and CUDA (``precision="bf16"``); parameters, optimiser moments and losses stay float32.
Measured on a 2-core AVX-512-BF16 CPU at 64 px, batch 8, one thread: bf16 1.5 s/step vs fp32 2.7 s/step (1.8x,
not more: the convolutions are already compute-bound in both). ``torch.compile`` was measured and left out: 3.6
minutes to compile, then 3.3 s/step (slower than eager), and it cannot double-backward through the lazy R1 pass.

Determinism and resume: every random draw at step ``s`` comes from a ``torch.Generator`` seeded with
``(seed, s)`` and the data order is a pure function of ``(seed, s)``, so a run restored from a checkpoint
(weights, EMA, both optimisers' moments, augmentation state, step) continues bit for bit. Checkpoints are
written every ``checkpoint_minutes`` (and on Ctrl-C / SIGTERM) to a temp file, then renamed; re-running the
same command on the same run folder resumes automatically.

Run folder::

    RUN/config.json                 options + generator/discriminator configs
    RUN/log.jsonl                   one JSON object per ``log_every`` steps (losses, p, img/s, kimg, time)
    RUN/metrics.jsonl               per-class FD-VGG16 / KID-VGG16 every ``metric_every`` steps (if on)
    RUN/checkpoint/state.safetensors  full training state (+ state.json, readable copy)
    RUN/G_ema.safetensors + .json   latest EMA generator, loadable with ``checkpoint.load_generator``; its
                                    origin lists every invocation that trained it (command, steps, threads)
    RUN/D.safetensors + .json       its discriminator (named in G_ema.json): a --base with it fine-tunes well
    RUN/samples/step-0001000.png    per-class sample grids (rows = classes) at fixed seeds
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import math
import os
import platform
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from face2emoticon import checkpoint as ckpt
from face2emoticon.augment import AdaptiveAugment
from face2emoticon.config import DiscriminatorConfig, GeneratorConfig
from face2emoticon.dataset import ImageDataset, load_dataset
from face2emoticon.networks import Discriminator, Generator
from face2emoticon.runloop import check_resume_options, truncate_log
from landmarks.errors import EmogetError

log = logging.getLogger(__name__)

_ARCH_DEFAULT = GeneratorConfig()


def _opt(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True)
class TrainOptions:
    """Every option of a training run; ``emoget train-gan`` flags are generated from these fields."""

    # architecture (fixed for a run)
    resolution: int = _opt(64, "image size in px (power of two, 8..1024)")
    z_dim: int = _opt(_ARCH_DEFAULT.z_dim, "latent z size")
    w_dim: int = _opt(_ARCH_DEFAULT.w_dim, "style w size")
    mapping_layers: int = _opt(_ARCH_DEFAULT.mapping_layers, "mapping network depth")
    channel_base: int = _opt(_ARCH_DEFAULT.channel_base, "channels at resolution r = min(base/r, max)")
    channel_max: int = _opt(_ARCH_DEFAULT.channel_max, "maximum channels per layer")
    # optimisation
    batch: int = _opt(8, "images per step")
    lr: float = _opt(0.0025, "Adam learning rate (G and D; betas 0, 0.99)")
    g_lr: float | None = _opt(None, "the generator's own learning rate (default --lr): lower it so a fresh D "
                                    "can keep up with a trained G", type=float)
    r1_gamma: float | None = _opt(None, "R1 weight (default 0.0002 * resolution^2 / batch)", type=float)
    r1_interval: int = _opt(16, "lazy R1 every N steps (0 = off)")
    style_mixing: float = _opt(0.9, "style mixing regularisation probability")
    ema_kimg: float | None = _opt(None, "EMA half-life in thousands of images (default batch * 10/32)", type=float)
    ema_rampup: float = _opt(0.05, "EMA ramp-up (half-life <= rampup * images seen; 0 = off)")
    augment: str = _opt("ada", "discriminator augmentation", choices=("ada", "fixed", "none"))
    augment_p: float = _opt(0.0, "initial (ada) or fixed augmentation probability")
    ada_target: float = _opt(0.6, "ADA target for E[sign(D(real))]")
    ada_kimg: float = _opt(100.0, "ADA speed: thousands of images for p to go 0 -> 1")
    mirror: bool = _opt(False, "add x-flipped copies of the data")
    precision: str = _opt("bf16", "autocast dtype for forward/backward", choices=("bf16", "fp32"))
    seed: int = _opt(0, "seed of weights, data order and every random draw")
    background: str = _opt("ffffff", "RGB hex colour transparent images are composited over")
    # fine-tuning
    base: str | None = _opt(None, "start from this checkpoint: a run folder, a state or generator .safetensors, "
                                  "a rosinality .pt or an NVlabs .pkl", type=str)
    freeze_d: int = _opt(0, "FreezeD: keep the first K discriminator blocks (from the top resolution) fixed")
    freeze_mapping: bool = _opt(False, "keep the generator's mapping network fixed")
    freeze_g_below: int = _opt(0, "keep generator blocks below this resolution fixed (e.g. 16)")
    d_warmup: int = _opt(0, "train only the discriminator for the first N steps (G fixed): a head start for a "
                            "fresh D beside a trained G, e.g. a --base that has no discriminator")
    # run control (may change between resumes)
    steps: int = _opt(100_000, "stop after this many steps in total")
    minutes: float | None = _opt(None, "stop (with a checkpoint) after this many minutes of this invocation",
                                 type=float)
    checkpoint_minutes: float = _opt(10.0, "write a resumable checkpoint every N minutes")
    checkpoint_steps: int | None = _opt(None, "also checkpoint every N steps", type=int)
    sample_every: int = _opt(1000, "write a per-class sample grid every N steps (0 = only at checkpoints)")
    samples_per_class: int = _opt(8, "columns of the sample grid")
    log_every: int = _opt(50, "append a line to log.jsonl every N steps")
    metric_every: int = _opt(0, "per-class FD-VGG16 / KID-VGG16 of G_ema every N steps, to metrics.jsonl "
                                "(0 = off; minutes on a CPU)")
    metric_samples: int = _opt(200, "real and generated images per class for the metrics")
    device: str = _opt("cpu", "torch device (cpu, cuda, cuda:1...)")
    progress: bool = _opt(True, "show a progress bar")

    def generator_config(self, class_names: tuple[str, ...]) -> GeneratorConfig:
        return GeneratorConfig(resolution=self.resolution, z_dim=self.z_dim, w_dim=self.w_dim,
                               mapping_layers=self.mapping_layers, channel_base=self.channel_base,
                               channel_max=self.channel_max, class_names=class_names)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


RESUME_MUTABLE = {"lr", "g_lr", "steps", "minutes", "checkpoint_minutes", "checkpoint_steps", "sample_every", "log_every",
                  "device", "compile", "progress", "samples_per_class", "metric_every", "metric_samples"}
"""Options that may differ between the first invocation and a resume."""


class TrainError(EmogetError):
    """The run folder or options are inconsistent."""


class _Stop(Exception):
    pass


def _step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + step * 7919 + 12345) % (2**63 - 1))


def _parse_rgb(hexstr: str) -> tuple[int, int, int]:
    h = hexstr.lstrip("#")
    if len(h) != 6:
        raise TrainError(f"background must be an RGB hex colour like ffffff, got {hexstr!r}")
    return tuple(int(h[i: i + 2], 16) for i in (0, 2, 4))


def _mirror(ds: ImageDataset) -> ImageDataset:
    return ImageDataset(torch.cat([ds.images, ds.images.flip(3)]), torch.cat([ds.labels, ds.labels]),
                        ds.class_names, ds.manifest_sha256)


@dataclass
class TrainResult:
    step: int
    run_dir: Path
    generator_path: Path
    wall_time_s: float
    last_log: dict[str, Any]


class Trainer:
    """One training run in ``run_dir``. ``Trainer(...).run()`` trains until ``options.steps`` or time is up."""

    def __init__(self, data: str | os.PathLike | ImageDataset, run_dir: str | os.PathLike, options: TrainOptions,
                 *, command: str | None = None):
        self.opt = options
        self.run_dir = Path(run_dir)
        self.state_path = self.run_dir / "checkpoint" / "state.safetensors"
        self.command = command
        self.device = torch.device(options.device)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if isinstance(data, ImageDataset):
            ds = data
        else:
            ds = load_dataset(data, resolution=options.resolution, cache_dir=self.run_dir / "cache",
                              background=_parse_rgb(options.background))
        if ds.resolution != options.resolution:
            raise TrainError(f"dataset is {ds.resolution} px but --resolution is {options.resolution}")
        self.data_sha256 = ds.manifest_sha256
        self.data = _mirror(ds) if options.mirror else ds
        self.class_names = ds.class_names if len(ds.class_names) > 1 else ()
        self._build()

    # ------------------------------------------------------------------------------------------------ setup
    def _build(self) -> None:
        opt = self.opt
        resuming = self.state_path.exists()
        base = None if resuming or not opt.base else load_base(opt.base)
        gcfg = opt.generator_config(self.class_names)
        if resuming:  # the architecture the run was built with (from a --base it may differ from the flags)
            gcfg = GeneratorConfig.from_json(ckpt.read_training_info(self.state_path)["G_config"])
        elif base is not None:
            b = base["G_cfg"]
            if b.resolution != opt.resolution:
                raise TrainError(f"--base is {b.resolution} px but --resolution is {opt.resolution}; train at the "
                                 "base's resolution")
            gcfg = b.replace(class_names=self.class_names)
        self.G = Generator(gcfg, seed=opt.seed).to(self.device).train()
        self.D = Discriminator(DiscriminatorConfig.matching(gcfg), seed=opt.seed + 1).to(self.device).train()
        if base is not None:
            _transfer(self.G, base["G"], "G")
            if base.get("D") is not None:
                _transfer(self.D, base["D"], "D")
            else:
                # Measured on a trained 64-px generator: a fresh D separates reals from fakes within 200
                # --d-warmup steps (none at all with --augment-p 0.4: augmentation hides the differences
                # from it), but once G trains at D's rate it falls back to chance for good (D_real ~ D_fake
                # ~ 0, R1 ~ 0) within 100 steps; with --g-lr 0.0002 beside --lr 0.0025 it keeps up
                # (D_real - D_fake ~ 3), and G can go to 0.0005 after 1,000 steps.
                if not opt.d_warmup:
                    log.warning("the base '%s' has no discriminator: a fresh one cannot keep up with a trained "
                                "generator; fine-tune from a run folder, a training state, a generator with its "
                                "D beside it or a .pt/.pkl with D, or give a new one a head start "
                                "(--d-warmup 400 --g-lr 0.0002)", opt.base)
                if opt.freeze_d:
                    log.warning("--freeze-d with a base that has no discriminator freezes random layers")
        self.G_ema = Generator(gcfg, seed=None).to(self.device).eval().requires_grad_(False)
        self.G_ema.load_state_dict(self.G.state_dict())
        if base is not None and base.get("G_ema") is not None:
            _transfer(self.G_ema, base["G_ema"], "G_ema")
        self.g_params = self._trainable_g()
        self.d_params = self._trainable_d()
        for p in self.G.parameters():
            p.requires_grad_(False)
        for p in self.D.parameters():
            p.requires_grad_(False)
        mb = opt.r1_interval / (opt.r1_interval + 1) if opt.r1_interval else 1.0
        g_lr, d_lr = opt.g_lr or opt.lr, opt.lr * mb
        self.opt_G = torch.optim.Adam(self.g_params, lr=g_lr, betas=(0.0, 0.99), eps=1e-8)
        self.opt_D = torch.optim.Adam(self.d_params, lr=d_lr, betas=(0.0, 0.99**mb), eps=1e-8)
        self._lrs = {self.opt_G: g_lr, self.opt_D: d_lr}  # set again after a resume loads the saved groups
        self.aug = AdaptiveAugment(p=opt.augment_p if opt.augment != "none" else 0.0,
                                   target=opt.ada_target if opt.augment == "ada" else None,
                                   speed_kimg=opt.ada_kimg)
        self.r1_gamma = opt.r1_gamma if opt.r1_gamma is not None else 0.0002 * opt.resolution**2 / opt.batch
        self.ema_kimg = opt.ema_kimg if opt.ema_kimg is not None else opt.batch * 10 / 32
        self.step = 0
        self.wall_time_s = 0.0
        self.samples_seen = 0
        self.base_info = base["info"] if base is not None else None
        self.invocations: list[dict[str, Any]] = []  # the earlier invocations of this run (from the checkpoint)
        self._invocation = self._new_invocation()

    def _new_invocation(self) -> dict[str, Any]:
        started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        return {"command": self.command, "from_step": self.step, "threads": torch.get_num_threads(),
                "hardware": hardware(self.device), "started": started}

    def history(self) -> list[dict[str, Any]]:
        """Every invocation that trained this run up to now, oldest first: its command line, the steps it
        trained (``from_step`` to ``to_step``), threads, hardware and start time (UTC)."""
        return [*self.invocations, {**self._invocation, "to_step": self.step}]

    def _trainable_g(self) -> list[torch.nn.Parameter]:
        opt, out = self.opt, []
        for name, p in self.G.named_parameters():
            if opt.freeze_mapping and name.startswith("mapping."):
                continue
            if opt.freeze_g_below and name.startswith("synthesis.b"):
                res = int(name.split(".")[1][1:])
                if res < opt.freeze_g_below:
                    continue
            out.append(p)
        return out

    def _trainable_d(self) -> list[torch.nn.Parameter]:
        frozen = {f"b{r}." for r in self.D.cfg.block_resolutions[: self.opt.freeze_d]}
        if self.opt.freeze_d > len(self.D.cfg.block_resolutions):
            raise TrainError(f"--freeze-d {self.opt.freeze_d} but the discriminator has only "
                             f"{len(self.D.cfg.block_resolutions)} blocks before the epilogue")
        return [p for n, p in self.D.named_parameters() if not any(n.startswith(f) for f in frozen)]

    def _modules(self) -> dict[str, torch.nn.Module]:
        return {"G": self.G, "G_ema": self.G_ema, "D": self.D}

    def _optimizers(self):
        return {"opt_G": (self.opt_G, self.G), "opt_D": (self.opt_D, self.D)}

    # ------------------------------------------------------------------------------------------ checkpoints
    def _check_resume_options(self, saved: dict[str, Any]) -> None:
        check_resume_options(self.run_dir, saved, self.opt, RESUME_MUTABLE, error=TrainError)

    def resume(self) -> bool:
        """Restore the run from ``checkpoint/state.safetensors`` if present; returns whether it did."""
        if not self.state_path.exists():
            return False
        self._check_resume_options(ckpt.read_training_info(self.state_path)["options"])
        _, info = ckpt.load_training_state(self.state_path, modules=self._modules(), optimizers=self._optimizers())
        for optimizer, lr in self._lrs.items():  # learning rates may change between resumes
            for group in optimizer.param_groups:
                group["lr"] = lr
        if info.get("data_manifest_sha256") != self.data_sha256:
            log.warning("the training data changed since this run started (manifest %s, was %s)",
                        self.data_sha256[:12], str(info.get("data_manifest_sha256"))[:12])
        self.step, self.wall_time_s = int(info["step"]), float(info["wall_time_s"])
        self.samples_seen = int(info["samples_seen"])
        self.aug.load_state(info["augment"])
        self.base_info = info.get("base")
        # runs saved before the invocations were recorded name only the last command
        self.invocations = info.get("invocations") or ([{"command": info["command"], "to_step": self.step}]
                                                       if info.get("command") else [])
        self._invocation = self._new_invocation()
        truncate_log(self.run_dir / "log.jsonl", self.step)
        truncate_log(self.run_dir / "metrics.jsonl", self.step)
        log.info("resumed %s at step %d", self.run_dir, self.step)
        return True

    def origin(self) -> dict[str, Any]:
        """Provenance for ``weights.register(origin=...)``."""
        return {"command": self.command, "data_manifest_sha256": self.data_sha256, "steps": self.step,
                "kimg": round(self.samples_seen / 1000, 3), "wall_time_s": round(self.wall_time_s, 1),
                "hardware": hardware(self.device), "base": self.base_info, "invocations": self.history()}

    def save(self) -> None:
        info = {"step": self.step, "wall_time_s": self.wall_time_s, "samples_seen": self.samples_seen,
                "augment": self.aug.state(), "options": self.opt.to_json(), "data_manifest_sha256": self.data_sha256,
                "class_names": list(self.class_names), "G_config": self.G.cfg.to_json(),
                "D_config": self.D.cfg.to_json(), "base": self.base_info, "command": self.command,
                "invocations": self.history()}
        ckpt.save_training_state(self.state_path, modules=self._modules(), optimizers=self._optimizers(),
                                 rng={"torch": torch.get_rng_state()}, info=info)
        ckpt.save_discriminator(self.D, self.run_dir / "D")
        ckpt.save_generator(self.G_ema, self.run_dir / "G_ema",
                            extra={"origin": self.origin(), "discriminator": "D.safetensors"})

    def write_config(self) -> None:
        cfg = {"options": self.opt.to_json(), "G_config": self.G.cfg.to_json(), "D_config": self.D.cfg.to_json(),
               "data_manifest_sha256": self.data_sha256, "class_counts": self.data.class_counts(),
               "r1_gamma": self.r1_gamma, "ema_kimg": self.ema_kimg, "command": self.command}
        ckpt.atomic_write_text(self.run_dir / "config.json", json.dumps(cfg, indent=2) + "\n")

    # ---------------------------------------------------------------------------------------------- training
    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.opt.precision == "bf16")

    def _gen_ws(self, z: torch.Tensor, c: torch.Tensor | None, g: torch.Generator, *, update_w_avg: bool):
        ws = self.G.mapping(z, c, update_w_avg=update_w_avg)
        if self.opt.style_mixing > 0:
            cutoff = int(torch.randint(1, self.G.num_ws, (), generator=g))
            mix = float(torch.rand((), generator=g)) < self.opt.style_mixing
            z2 = torch.randn(z.shape, generator=g).to(self.device)
            if mix:
                ws = Generator.mix(ws, self.G.mapping(z2, c), cutoff)
        return ws

    def _fake_labels(self, g: torch.Generator) -> torch.Tensor | None:
        if not self.class_names:
            return None
        idx = torch.randint(0, len(self.data), (self.opt.batch,), generator=g)
        return self.data.labels[idx].to(self.device)

    def train_step(self) -> dict[str, float]:
        """One G step and one D step (with R1 on every ``r1_interval``-th step). Returns the losses."""
        opt, step, b = self.opt, self.step, self.opt.batch
        g = _step_generator(opt.seed, step)
        cond = bool(self.class_names)
        stats: dict[str, float] = {}

        # ---- generator: non-saturating loss through D (D frozen for this pass); skipped while D warms up.
        if step >= opt.d_warmup:
            for p in self.g_params:
                p.requires_grad_(True)
            z = torch.randn(b, self.G.z_dim, generator=g).to(self.device)
            c = self._fake_labels(g)
            with self._autocast():
                ws = self._gen_ws(z, c, g, update_w_avg=True)
                fake = self.G.synthesis(ws, noise_mode="random", generator=g)
                logits = self.D(self.aug(fake, generator=g), c)
            loss_g = F.softplus(-logits.float()).mean()
            self.opt_G.zero_grad(set_to_none=True)
            loss_g.backward()
            self.opt_G.step()
            for p in self.g_params:
                p.requires_grad_(False)
            stats["loss_G"] = float(loss_g.detach())

        # ---- discriminator: logistic loss, lazy R1 on (un-augmented) reals.
        for p in self.d_params:
            p.requires_grad_(True)
        idx = self.data.indices_for_step(step, b, seed=opt.seed)
        real, c_real = self.data.batch(idx, device=self.device)
        c_real = c_real if cond else None
        do_r1 = opt.r1_interval > 0 and self.r1_gamma > 0 and step % opt.r1_interval == 0
        z = torch.randn(b, self.G.z_dim, generator=g).to(self.device)
        c = self._fake_labels(g)
        with torch.no_grad(), self._autocast():
            fake = self.G.synthesis(self._gen_ws(z, c, g, update_w_avg=False), noise_mode="random", generator=g)
        real = real.detach().requires_grad_(do_r1)
        with self._autocast():
            logits_fake = self.D(self.aug(fake.float(), generator=g), c)
            logits_real = self.D(self.aug(real, generator=g), c_real)
        loss_d = F.softplus(logits_fake.float()).mean() + F.softplus(-logits_real.float()).mean()
        total = loss_d
        if do_r1:
            (grad,) = torch.autograd.grad(logits_real.float().sum(), real, create_graph=True)
            r1 = grad.float().square().sum([1, 2, 3]).mean()
            total = total + r1 * (self.r1_gamma / 2) * opt.r1_interval
            stats["r1"] = float(r1.detach())
        self.opt_D.zero_grad(set_to_none=True)
        total.backward()
        self.opt_D.step()
        for p in self.d_params:
            p.requires_grad_(False)
        self.aug.accumulate(logits_real)
        stats.update(loss_D=float(loss_d.detach()), D_real=float(logits_real.detach().float().mean()),
                     D_fake=float(logits_fake.detach().float().mean()), augment_p=self.aug.p)

        # ---- EMA of G (parameters and buffers).
        self.samples_seen += b
        ema_nimg = self.ema_kimg * 1000
        if self.opt.ema_rampup:
            ema_nimg = min(ema_nimg, self.samples_seen * self.opt.ema_rampup)
        beta = 0.5 ** (b / max(ema_nimg, 1e-8))
        with torch.no_grad():
            for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
                p_ema.copy_(p.lerp(p_ema, beta))
            for b_ema, buf in zip(self.G_ema.buffers(), self.G.buffers()):
                b_ema.copy_(buf)
        self.step += 1
        return stats

    @torch.no_grad()
    def sample_grid(self) -> np.ndarray:
        """G_ema samples at fixed seeds: ``uint8 [rows*R, cols*R, 3]``, one row per class."""
        n = self.opt.samples_per_class
        rows = len(self.class_names) or 1
        z = torch.randn(n, self.G.z_dim, generator=torch.Generator().manual_seed(1234)).to(self.device)
        imgs = []
        for r in range(rows):
            c = torch.full((n,), r, dtype=torch.long, device=self.device) if self.class_names else None
            imgs.append(self.G_ema(z, c, noise_mode="const").float().cpu())
        x = torch.stack(imgs)  # [rows, n, 3, R, R]
        x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        res = x.shape[-1]
        return x.permute(0, 3, 1, 4, 2).reshape(rows * res, n * res, 3).numpy()

    def write_samples(self) -> Path:
        path = self.run_dir / "samples" / f"step-{self.step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(self.sample_grid()).save(path)
        return path

    def compute_metrics(self) -> dict[str, dict[str, float]]:
        """Per-class FD-VGG16 and KID-VGG16 of G_ema against ``metric_samples`` real images per class."""
        from face2emoticon.metrics import generator_metrics

        n, g = self.opt.metric_samples, torch.Generator().manual_seed(4321)
        real = {}
        for k, name in enumerate(self.class_names or ("all",)):
            idx = (self.data.labels == k).nonzero().squeeze(1) if self.class_names else torch.arange(len(self.data))
            real[name] = self.data.batch(idx[torch.randperm(len(idx), generator=g)[:n]])[0]
        return generator_metrics(self.G_ema, real, n_fake=n, seed=0)

    def write_metrics(self) -> dict[str, Any]:
        entry = {"step": self.step, "kimg": round(self.samples_seen / 1000, 3), "metrics": self.compute_metrics()}
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(entry) + "\n")
        return entry

    def run(self, *, on_step: Callable[[int], None] | None = None) -> TrainResult:
        """Resume if possible, then train to ``options.steps``; checkpoints on time, Ctrl-C and SIGTERM."""
        opt = self.opt
        if not self.resume():
            self.write_config()
        log_path = self.run_dir / "log.jsonl"
        t_start = time.monotonic()
        t_last_ckpt = t_start
        t_last_log, n_last_log = time.perf_counter(), self.step
        acc: dict[str, list[float]] = {}
        last: dict[str, Any] = {}
        stop = {"flag": False}
        old_handler = None
        try:
            old_handler = signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__("flag", True))
        except ValueError:  # not the main thread
            pass
        bar = None
        if opt.progress:
            from tqdm import tqdm

            bar = tqdm(total=opt.steps, initial=self.step, unit="step", dynamic_ncols=True)
        interrupted = False
        try:
            while self.step < opt.steps and not stop["flag"]:
                t0 = time.perf_counter()
                stats = self.train_step()
                self.wall_time_s += time.perf_counter() - t0
                for k, v in stats.items():
                    acc.setdefault(k, []).append(v)
                if on_step is not None:
                    on_step(self.step)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(G=f"{stats.get('loss_G', math.nan):.3f}", D=f"{stats['loss_D']:.3f}",
                                    p=f"{self.aug.p:.2f}")
                if self.step % opt.log_every == 0 or self.step == opt.steps:
                    now = time.perf_counter()
                    last = {"step": self.step, "kimg": round(self.samples_seen / 1000, 3),
                            **{k: round(sum(v) / len(v), 5) for k, v in acc.items()},
                            "img_per_s": round((self.step - n_last_log) * opt.batch / max(now - t_last_log, 1e-9), 2),
                            "wall_time_s": round(self.wall_time_s, 1)}
                    with open(log_path, "a") as f:
                        f.write(json.dumps(last) + "\n")
                    if bar is not None:
                        bar.set_postfix(G=last.get("loss_G", math.nan), D=last["loss_D"], p=f"{self.aug.p:.2f}",
                                        img_s=last["img_per_s"])
                    acc, t_last_log, n_last_log = {}, now, self.step
                if opt.sample_every and self.step % opt.sample_every == 0:
                    self.write_samples()
                if opt.metric_every and self.step % opt.metric_every == 0:
                    self.write_metrics()
                elapsed_min = (time.monotonic() - t_last_ckpt) / 60
                if elapsed_min >= opt.checkpoint_minutes or (
                        opt.checkpoint_steps and self.step % opt.checkpoint_steps == 0):
                    self.save()
                    t_last_ckpt = time.monotonic()
                if opt.minutes is not None and (time.monotonic() - t_start) / 60 >= opt.minutes:
                    break
        except KeyboardInterrupt:
            interrupted = True
        finally:
            if bar is not None:
                bar.close()
            if old_handler is not None:
                signal.signal(signal.SIGTERM, old_handler)
        # a normal end, a time limit, Ctrl-C or SIGTERM: save (other exceptions propagate without saving).
        self.save()
        self.write_samples()
        if interrupted:
            raise KeyboardInterrupt
        return TrainResult(step=self.step, run_dir=self.run_dir, generator_path=self.run_dir / "G_ema.safetensors",
                           wall_time_s=self.wall_time_s, last_log=last)


def train(data: str | os.PathLike | ImageDataset, run_dir: str | os.PathLike, options: TrainOptions | None = None,
          *, command: str | None = None, on_step: Callable[[int], None] | None = None) -> TrainResult:
    """Train (or resume) a run; see the module docstring for the run folder layout."""
    return Trainer(data, run_dir, options or TrainOptions(), command=command).run(on_step=on_step)


# ---------------------------------------------------------------------------------------------------- helpers

def hardware(device: torch.device) -> str:
    """The machine a run trains on, for provenance: the GPU name, or the CPU, its cores and torch's version."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}"


def load_base(path: str | os.PathLike) -> dict[str, Any]:
    """Weights to fine-tune from: ``{"G_cfg", "G", "G_ema", "D", "info"}`` state dicts (``D`` may be ``None``).

    Accepts a run folder, a training ``state.safetensors``, a generator ``.safetensors`` (+ .json, and the
    discriminator it names beside it when there is one), a rosinality ``.pt`` or an NVlabs ``.pkl``.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "checkpoint" / "state.safetensors"
    info = {"path": str(path)}
    if p.suffix in (".pt", ".pth", ".pkl"):
        from face2emoticon import foreign

        G, D = foreign.load_foreign(p)
        return {"G_cfg": G.cfg, "G": G.state_dict(), "G_ema": G.state_dict(),
                "D": D.state_dict() if D is not None else None, "info": info}
    if _is_state(p):
        tensors, meta = ckpt.read_training_state(p)
        gcfg = GeneratorConfig.from_json(meta["G_config"])
        info["step"] = meta["step"]
        return {"G_cfg": gcfg, "G": ckpt.subdict(tensors, "G"), "G_ema": ckpt.subdict(tensors, "G_ema"),
                "D": ckpt.subdict(tensors, "D"), "info": info}
    G = ckpt.load_generator(p)
    d_path = ckpt.discriminator_beside(p)
    D = ckpt.load_discriminator(d_path).state_dict() if d_path is not None else None
    return {"G_cfg": G.cfg, "G": G.state_dict(), "G_ema": G.state_dict(), "D": D, "info": info}


def _is_state(p: Path) -> bool:
    if p.suffix != ".safetensors" or not p.exists():
        return False
    from safetensors import safe_open

    with safe_open(str(p), framework="pt") as f:
        return (f.metadata() or {}).get("format") == ckpt.STATE_FORMAT


def _transfer(dst: torch.nn.Module, src: dict[str, torch.Tensor], what: str) -> None:
    """Copy every tensor whose name and shape match; adapt the class embedding; log what stays fresh."""
    own = dst.state_dict()
    new, fresh = {}, []
    for k, v in own.items():
        s = src.get(k)
        if s is not None and s.shape == v.shape:
            new[k] = s.to(v.dtype)
        elif s is not None and k == "mapping.fc0.weight" and s.shape[0] == v.shape[0] and s.shape[1] < v.shape[1]:
            # unconditional base -> conditional: the embedding inputs start at zero (the class is ignored at first)
            w = torch.zeros_like(v)
            w[:, : s.shape[1]] = s
            new[k] = w
        else:
            new[k] = v
            fresh.append(k)
    dst.load_state_dict(new, strict=True)
    if fresh:
        log.info("%s: %d tensors not in the base keep their fresh initialisation: %s", what, len(fresh), fresh[:8])


def option_fields() -> list[dataclasses.Field]:
    """The :class:`TrainOptions` fields, in order (for generating CLI flags)."""
    return list(fields(TrainOptions))
