"""Training the ×4 upscaler on style renders, with GAN-like degradations; and its evaluation.

Pairs are free: the style renders ``DATA/<style>/*.png`` are 256 px vector art. A training pair is a
random ``crop`` of a render (the target) and its ×4 downsample through a random mix of degradations that
make it look like a 64-px generator's output (:func:`degrade`): Gaussian blur before and/or after the
downsample, a random resampling filter, occasional extra smoothing, slight colour jitter, mild noise,
rounding to 8 bits. The network learns to restore flat colour areas and crisp dark outlines. Some targets get
smooth random shading (:func:`shade`), so soft gradients stay smooth.

The last ``holdout`` files (sorted names: the last identities) of each style are never trained on; they
are the validation set, scored for the upscaler and for bicubic on two inputs: degraded the same way
(fixed seeds) and plainly Lanczos-downsampled (what the generator was trained to imitate).

Run folder::

    RUN/config.json                      options and architecture
    RUN/log.jsonl                        losses every ``log_every`` steps; ``{"step", "val": {...}}`` lines
    RUN/checkpoint/state.safetensors     model + Adam moments + bookkeeping (resume), written atomically
    RUN/upscaler.safetensors (+ .json)   the model to ship
    RUN/samples/step-0000500.png         rows: validation images; columns: input (nearest), bicubic,
                                         upscaler, target
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from face2emoticon import checkpoint as ckpt
from face2emoticon.dataset import IMAGE_EXTENSIONS, DatasetError
from face2emoticon.runloop import (
    append_jsonl,
    check_resume_options,
    hardware,
    run_steps,
    truncate_log,
)
from face2emoticon.upscale import (
    SCALE,
    Upscaler,
    UpscalerConfig,
    build,
    save_upscaler,
    to_uint8,
)
from landmarks.errors import EmogetError

log = logging.getLogger(__name__)

EVAL_SEED = 20240601  # degradations of the validation images: image i uses EVAL_SEED + i


def _opt(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True)
class UpscaleTrainOptions:
    """Options of ``emoget train-upscaler``; ``steps`` also sets the cosine learning-rate schedule."""

    steps: int = _opt(5000, "training steps (the learning rate decays to lr_min over them)")
    minutes: float | None = _opt(None, "stop after this many minutes of wall time (checkpointed; re-run resumes)")
    batch: int = _opt(16, "crops per step")
    crop: int = _opt(128, "target crop size in pixels (a multiple of 4; the input is crop/4)")
    lr: float = _opt(2e-3, "Adam learning rate")
    lr_min: float = _opt(2e-5, "learning rate at the last step (cosine)")
    edge_weight: float = _opt(0.5, "weight of the L1 loss on image gradients (crisp outlines)")
    lpips_weight: float = _opt(0.0, "weight of the LPIPS-alex loss (0 = off; doubles a step's cost on CPU)")
    plain_p: float = _opt(0.2, "probability that a pair's input is a plain downsample (no degradation)")
    shade_p: float = _opt(0.3, "probability that a target gets smooth random shading (GAN stills have soft "
                               "gradients: keep them rather than posterise them)")
    seed: int = _opt(0, "random seed (data order, crops, degradations, init)")
    per_style: int = _opt(1000, "training images loaded per style (0 = all but the held-out ones)")
    holdout: int = _opt(50, "last files of each style kept out of training for validation")
    val_per_style: int = _opt(8, "held-out images per style scored during training")
    val_every: int = _opt(500, "score the validation images every N steps")
    sample_every: int = _opt(500, "write a sample grid every N steps")
    log_every: int = _opt(50, "append the mean losses to log.jsonl every N steps")
    checkpoint_minutes: float = _opt(5.0, "write the resumable checkpoint every N minutes")
    channels: int = _opt(32, "width of the residual blocks")
    blocks: int = _opt(4, "residual blocks at the input resolution")
    up_channels: str = _opt("32,16", "widths after the first and second pixel-shuffle stage")
    negative_slope: float = _opt(0.1, "slope of the leaky ReLUs for negative inputs (0 = ReLU)")
    init: str | None = _opt(None, "start from this upscaler's weights (a .safetensors of the same architecture)")
    generator: str | None = _opt(None, "generator weights (.safetensors) whose redraws of the renders become "
                                       "inputs, so the network also restores the generator's own artefacts "
                                       "(needs --encoder)")
    encoder: str | None = _opt(None, "the encoder of --generator (its redraw of a render is G(E(render)))")
    redraw_p: float = _opt(0.5, "with --generator: probability that a pair's input is the generator's redraw")
    redraw_steps: int = _opt(0, "with --generator: Adam steps (MSE + LPIPS-alex) that fit the encoder's latent to "
                                "the render before it is redrawn, as the pipeline's inversion does (0 = the "
                                "encoder's one-shot latent; ~0.033 s per image and step)")

    def __post_init__(self):
        if self.crop % SCALE or self.crop < 4 * SCALE:
            raise EmogetError(f"crop must be a multiple of {SCALE} and at least {4 * SCALE}, got {self.crop}")
        if self.batch < 1 or self.steps < 1:
            raise EmogetError("steps and batch must be at least 1")
        if (self.generator is None) != (self.encoder is None):
            raise EmogetError("--generator and --encoder go together: the redraws are G(E(render))")
        if not 0.0 <= self.redraw_p <= 1.0:
            raise EmogetError(f"redraw_p must be between 0 and 1, got {self.redraw_p}")
        if self.redraw_steps < 0:
            raise EmogetError(f"redraw_steps must be >= 0, got {self.redraw_steps}")

    def model_config(self) -> UpscalerConfig:
        return UpscalerConfig(channels=self.channels, blocks=self.blocks,
                              up_channels=tuple(int(c) for c in str(self.up_channels).split(",")),
                              negative_slope=self.negative_slope)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


RESUME_MUTABLE = {"steps", "minutes", "val_every", "sample_every", "log_every", "checkpoint_minutes",
                  "val_per_style"}


# ------------------------------------------------------------------------------------------------ data

def split_files(data_dir: str | os.PathLike, *, holdout: int) -> tuple[list[str], dict[str, list[Path]],
                                                                       dict[str, list[Path]]]:
    """``(styles, train files per style, held-out files per style)``: the last ``holdout`` sorted files of
    each style folder are held out."""
    root = Path(data_dir)
    if not root.is_dir():
        raise DatasetError(f"no data folder '{root}'; make the style renders with `make data` or give a folder "
                           "with one subfolder of images per style")
    styles = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    train, val = {}, {}
    for s in styles:
        files = sorted(p for p in (root / s).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if len(files) <= holdout:
            raise DatasetError(f"style folder '{root / s}' has {len(files)} images, need more than the "
                               f"{holdout} held out for validation")
        train[s], val[s] = files[:-holdout] if holdout else files, files[-holdout:] if holdout else []
    if not styles:
        raise DatasetError(f"'{root}' has no style subfolders of images")
    return styles, train, val


def read_image(path: Path, *, size: int | None = None, background=(242, 242, 242)) -> np.ndarray:
    """uint8 ``[S,S,3]``: centre-cropped square, alpha composited over ``background``, resized to ``size``."""
    with Image.open(path) as im:
        im.load()
        if im.mode in ("RGBA", "LA", "P"):
            im = im.convert("RGBA")
            bg = Image.new("RGBA", im.size, (*background, 255))
            im = Image.alpha_composite(bg, im)
        im = im.convert("RGB")
        w, h = im.size
        if w != h:
            s = min(w, h)
            im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
        if size is not None and im.size[0] != size:
            im = im.resize((size, size), Image.Resampling.LANCZOS)
        return np.array(im)


def _images_tensor(paths: list[Path], size: int | None) -> torch.Tensor:
    arrays = [read_image(p, size=size) for p in paths]
    side = arrays[0].shape[0]
    if size is None and any(a.shape[0] != side for a in arrays):
        arrays = [read_image(p, size=side) for p in paths]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


# ------------------------------------------------------------------------------------------ degradations

def _gauss(sigma: float) -> torch.Tensor:
    r = max(1, math.ceil(3 * sigma))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float32) / sigma) ** 2)
    return k / k.sum()


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``[B,C,H,W]`` (reflect borders); ``sigma`` in pixels."""
    if sigma <= 0:
        return x
    k = _gauss(sigma).to(x)
    c, r = x.shape[1], (k.numel() - 1) // 2
    r = min(r, x.shape[-1] - 1, x.shape[-2] - 1)
    k = k[(k.numel() - 1) // 2 - r:(k.numel() - 1) // 2 + r + 1]
    k = k / k.sum()
    x = F.pad(x, (r, r, r, r), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def downsample(x: torch.Tensor, mode: str = "bicubic") -> torch.Tensor:
    """``[B,C,H,W]`` → ``[B,C,H/4,W/4]`` with ``area``, antialiased ``bilinear`` or antialiased ``bicubic``."""
    size = (x.shape[-2] // SCALE, x.shape[-1] // SCALE)
    if mode == "area":
        return F.interpolate(x, size=size, mode="area")
    return F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=True)


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Round ``[-1,1]`` values to the 256 levels of an 8-bit image."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1


def degrade(hr: torch.Tensor, *, generator: torch.Generator, plain_p: float = 0.2) -> torch.Tensor:
    """``hr [B,3,H,W]`` in ``[-1,1]`` (H, W multiples of 4) → ``[B,3,H/4,W/4]``, looking like a GAN's output.

    Per image, with probability ``plain_p`` a plain antialiased bicubic downsample; otherwise a random mix:
    HR blur (p 0.7, σ 0.5–3 px), area/bilinear/bicubic downsample, LR blur (p 0.5, σ 0.3–1 px),
    extra smoothing by down-and-up resampling (p 0.2), halos by unsharp masking (p 0.3, amount 0.3–1.2:
    GAN stills have light rims around dark shapes), colour gain/offset (p 0.5, ±4 %), Gaussian noise
    (p 0.5, σ ≤ 4/255). Always rounded to 8 bits. Deterministic for a given ``generator`` state.
    """
    out = []
    for i in range(hr.shape[0]):
        u = torch.rand(16, generator=generator).tolist()
        x = hr[i:i + 1]
        if u[0] < plain_p:
            lr = downsample(x, "bicubic")
        else:
            if u[1] < 0.7:
                x = blur(x, 0.5 + 2.5 * u[2])
            lr = downsample(x, ("area", "bilinear", "bicubic")[min(int(u[3] * 3), 2)])
            if u[4] < 0.5:
                lr = blur(lr, 0.3 + 0.7 * u[5])
            if u[6] < 0.2:
                h, w = lr.shape[-2:]
                f = 0.5 + 0.3 * u[7]
                small = F.interpolate(lr, size=(max(2, round(h * f)), max(2, round(w * f))), mode="bilinear",
                                      align_corners=False, antialias=True)
                lr = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
            if u[12] < 0.3:
                lr = lr + (0.3 + 0.9 * u[13]) * (lr - blur(lr, 0.8 + 0.7 * u[14]))
            if u[8] < 0.5:
                g = torch.rand(2, 3, 1, 1, generator=generator)
                lr = (lr * (1 + 0.08 * (g[0] - 0.5)) + 0.08 * (g[1] - 0.5)).to(lr)
            if u[10] < 0.5:
                lr = lr + torch.randn(lr.shape, generator=generator) * (u[11] * 4 / 127.5)
        out.append(lr)
    return quantize(torch.cat(out))


def shade(hr: torch.Tensor, *, generator: torch.Generator, p: float = 0.3) -> torch.Tensor:
    """Smooth random shading of some of ``hr [B,3,H,W]`` in ``[-1,1]`` (each with probability ``p``).

    A low-frequency gain field (a random 2-4 px grid upsampled bicubically: luminance ±25 %, per channel
    ±5 %) multiplies the image. The renders are flat, but GAN stills have soft gradients; shaded targets
    teach the network to keep a gradient smooth instead of posterising it into bands.
    """
    b, _, h, w = hr.shape
    on = torch.rand(b, generator=generator) < p
    n = 2 + int(torch.randint(0, 3, (1,), generator=generator))
    lum = 1 + 0.5 * (torch.rand(b, 1, n, n, generator=generator) - 0.5)
    chroma = 1 + 0.1 * (torch.rand(b, 3, n, n, generator=generator) - 0.5)
    field = F.interpolate(lum * chroma, size=(h, w), mode="bicubic", align_corners=True)
    shaded = ((hr + 1) * field - 1).clamp(-1, 1)
    return torch.where(on.view(b, 1, 1, 1), shaded, hr)


def plain_input(hr: np.ndarray) -> np.ndarray:
    """uint8 ``[H,W,3]`` → ``[H/4,W/4,3]`` Lanczos downsample: how the generator's training images were made."""
    h, w = hr.shape[:2]
    return np.asarray(Image.fromarray(hr).resize((w // SCALE, h // SCALE), Image.Resampling.LANCZOS))


def degraded_input(hr: np.ndarray, *, seed: int, plain_p: float = 0.0) -> np.ndarray:
    """uint8 ``[H,W,3]`` → ``[H/4,W/4,3]`` through :func:`degrade` with ``seed`` (validation: no plain draw)."""
    x = torch.tensor(hr).permute(2, 0, 1)[None].float() / 127.5 - 1
    return to_uint8(degrade(x, generator=torch.Generator().manual_seed(seed), plain_p=plain_p))


# ------------------------------------------------------------------------------------------------ redraws

def redraws(generator: str | os.PathLike, encoder: str | os.PathLike, images: torch.Tensor, classes: list[str], *,
            batch: int = 64, steps: int = 0, lr: float = 0.02) -> torch.Tensor:
    """The generator's redraws of ``images``: uint8 ``[N,3,S,S]`` renders at 4x the generator's resolution,
    ``classes`` their style names → uint8 ``[N,3,S/4,S/4]``, ``G(w)`` (constant noise) with ``w`` the encoder's
    latent of ``x``, the Lanczos downsample the generator was trained on, fitted to ``x`` by ``steps`` of Adam
    on MSE + LPIPS-alex (per image: Adam's updates are elementwise, so a batch is ``batch`` independent fits).
    A redraw keeps the render's layout but carries the generator's own artefacts (wavy outlines, soft blobs,
    colour fringes, faint thin strokes), so (redraw, render) pairs teach the upscaler to restore what the
    pipeline hands it."""
    from face2emoticon.checkpoint import load_generator
    from face2emoticon.encoder import load_encoder
    from face2emoticon.invert import frozen
    from face2emoticon.lpips import get_lpips, resize_for_lpips

    G, E = load_generator(generator).eval(), load_encoder(encoder).eval()
    res, names = int(G.cfg.resolution), list(G.cfg.class_names)
    if images.shape[-1] != SCALE * res:
        raise DatasetError(f"the renders are {images.shape[-1]} px; redraws of a {res}-px generator need "
                           f"{SCALE * res}-px targets")
    unknown = sorted(set(classes) - set(names))
    if unknown:
        raise DatasetError(f"styles {unknown} are not classes of the generator {generator} ({names})")
    if E.cfg.resolution != res or E.cfg.c_dim != len(names):
        raise EmogetError(f"the encoder {encoder} does not fit the generator {generator}")
    lp = get_lpips("alex") if steps else None
    out = []
    with frozen(G):
        for i in range(0, len(images), batch):
            chunk = [plain_input(im.permute(1, 2, 0).numpy()) for im in images[i:i + batch]]
            x = torch.from_numpy(np.stack(chunk)).permute(0, 3, 1, 2).float() / 127.5 - 1
            c = torch.tensor([names.index(k) for k in classes[i:i + batch]])
            with torch.no_grad():
                ws = E(x, c if E.cfg.c_dim else None)
            if steps:
                ws = ws.clone().requires_grad_(True)
                opt = torch.optim.Adam([ws], lr=lr)
                for _ in range(steps):
                    y = G.synthesis(ws, noise_mode="const")
                    loss = (y - x).square().flatten(1).mean(1) + lp(resize_for_lpips(y), resize_for_lpips(x)).view(-1)
                    opt.zero_grad(set_to_none=True)
                    loss.sum().backward()
                    opt.step()
            with torch.no_grad():
                y = G.synthesis(ws.detach(), noise_mode="const")
            out.append(((y.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8))
    return torch.cat(out)


# ----------------------------------------------------------------------------------------------- metrics

def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 images."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def bicubic(lr: np.ndarray) -> np.ndarray:
    """uint8 ``[h,w,3]`` → ``[4h,4w,3]``, PIL bicubic (the baseline of the metrics)."""
    h, w = lr.shape[:2]
    return np.asarray(Image.fromarray(lr).resize((w * SCALE, h * SCALE), Image.Resampling.BICUBIC))


def lanczos(lr: np.ndarray) -> np.ndarray:
    """uint8 ``[h,w,3]`` → ``[4h,4w,3]``, PIL Lanczos (what the pipeline did before the upscaler)."""
    h, w = lr.shape[:2]
    return np.asarray(Image.fromarray(lr).resize((w * SCALE, h * SCALE), Image.Resampling.LANCZOS))


def _lpips(a: np.ndarray, b: np.ndarray) -> float:
    from face2emoticon.lpips import get_lpips

    def t(x):
        return torch.tensor(x).permute(2, 0, 1)[None].float() / 127.5 - 1

    with torch.no_grad():
        return float(get_lpips("alex")(t(a), t(b)))


def evaluate(model: Upscaler, targets: list[np.ndarray], *, lpips: bool = True, seed: int = EVAL_SEED,
             inputs: tuple[str, ...] = ("degraded", "plain"), redrawn: list[np.ndarray] | None = None
             ) -> dict[str, Any]:
    """Mean PSNR (dB) and LPIPS-alex of the upscaler, bicubic and Lanczos against uint8 ``[H,W,3]`` ``targets``.

    ``degraded``: inputs from :func:`degraded_input` (target ``i`` with ``seed + i``, never plain);
    ``plain``: :func:`plain_input`; and, when ``redrawn`` (the generator's redraws of the targets, see
    :func:`redraws`) is given, ``redraw``. Returns ``{input: {"psnr_upscaler", "psnr_bicubic",
    "psnr_lanczos", "lpips_upscaler", ...}, "n": len(targets)}`` (LPIPS keys only with ``lpips``).
    """
    from face2emoticon.upscale import upscale

    out: dict[str, Any] = {"n": len(targets)}
    if redrawn is not None:
        if len(redrawn) != len(targets):
            raise ValueError(f"{len(redrawn)} redraws for {len(targets)} targets")
        inputs = (*inputs, "redraw")
    for kind in inputs:
        sums: dict[str, float] = {}
        for i, hr in enumerate(targets):
            if kind == "degraded":
                lr = degraded_input(hr, seed=seed + i)
            else:
                lr = plain_input(hr) if kind == "plain" else redrawn[i]
            for name, y in (("upscaler", upscale(model, lr)), ("bicubic", bicubic(lr)), ("lanczos", lanczos(lr))):
                sums[f"psnr_{name}"] = sums.get(f"psnr_{name}", 0.0) + psnr(y, hr)
                if lpips:
                    sums[f"lpips_{name}"] = sums.get(f"lpips_{name}", 0.0) + _lpips(y, hr)
        out[kind] = {k: round(v / max(len(targets), 1), 4) for k, v in sums.items()}
    return out


def sample_grid(model: Upscaler, targets: list[np.ndarray], *, seed: int = EVAL_SEED,
                redrawn: list[np.ndarray] | None = None) -> np.ndarray:
    """uint8 grid: one row per target; input (nearest ×4), bicubic, upscaler, target. The inputs are the
    ``redrawn`` images when given, else degraded downsamples."""
    from face2emoticon.upscale import upscale

    rows = []
    for i, hr in enumerate(targets):
        lr = redrawn[i] if redrawn is not None else degraded_input(hr, seed=seed + i)
        near = np.asarray(Image.fromarray(lr).resize(hr.shape[1::-1], Image.Resampling.NEAREST))
        rows.append(np.concatenate([near, bicubic(lr), upscale(model, lr), hr], axis=1))
    return np.concatenate(rows, axis=0)


# ---------------------------------------------------------------------------------------------- training

def edge_loss(y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """L1 between the horizontal and vertical finite differences of ``y`` and ``t``."""
    dx = (y[..., :, 1:] - y[..., :, :-1]) - (t[..., :, 1:] - t[..., :, :-1])
    dy = (y[..., 1:, :] - y[..., :-1, :]) - (t[..., 1:, :] - t[..., :-1, :])
    return dx.abs().mean() + dy.abs().mean()


@dataclass
class UpscaleTrainResult:
    step: int
    run_dir: Path
    model_path: Path
    wall_time_s: float
    last_log: dict[str, Any]
    val: dict[str, Any]


class UpscaleTrainer:
    """One run folder: build or resume, train to ``steps`` (or ``minutes``), checkpoint atomically."""

    def __init__(self, data: str | os.PathLike, run_dir: str | os.PathLike, options: UpscaleTrainOptions, *,
                 command: str | None = None):
        self.data = Path(data)
        self.run_dir = Path(run_dir)
        self.opt = options
        self.command = command
        self.state_path = self.run_dir / "checkpoint" / "state.safetensors"
        from weights import sha256_of

        # The files the run starts from, hashed once (their origin entries; the redraw cache's key).
        self.inputs_sha256 = {name: sha256_of(getattr(options, name)) for name in ("init", "generator", "encoder")
                              if getattr(options, name)}
        self.model = build(options.model_config(), seed=options.seed)
        if options.init:
            from face2emoticon.upscale import load_upscaler

            start = load_upscaler(options.init)
            if start.cfg != self.model.cfg:
                raise EmogetError(f"--init {options.init} is a {start.cfg} upscaler; give the same "
                                  "--channels, --blocks, --up-channels and --negative-slope")
            self.model.load_state_dict(start.state_dict())
        self.optim = torch.optim.Adam(self.model.parameters(), lr=options.lr, betas=(0.9, 0.99))
        self.step = 0
        self.wall_time_s = 0.0
        self.last_val: dict[str, Any] = {}
        self.last_val_step = -1
        self.manifest_sha256 = _manifest_sha256(self.data)
        self.styles, train, val = split_files(self.data, holdout=options.holdout)
        g = np.random.default_rng(options.seed)
        paths, classes = [], []
        for s in self.styles:
            files = train[s]
            if options.per_style and len(files) > options.per_style:
                files = [files[i] for i in sorted(g.choice(len(files), options.per_style, replace=False))]
            paths += files
            classes += [s] * len(files)
        t0 = time.perf_counter()
        self.images = _images_tensor(paths, None)
        if min(self.images.shape[-2:]) < options.crop:
            raise DatasetError(f"images are {self.images.shape[-1]} px, smaller than --crop {options.crop}")
        log.info("loaded %d training images (%d px) in %.1f s", len(paths), self.images.shape[-1],
                 time.perf_counter() - t0)
        side = self.images.shape[-1]
        side -= side % SCALE
        self.val_targets = [read_image(p, size=side) for s in self.styles for p in val[s][:options.val_per_style]]
        self.sample_targets = [read_image(val[s][0], size=side) for s in self.styles if val[s]][:6]
        self.redraws = self.val_redraws = self.sample_redraws = None
        if options.generator:
            t0 = time.perf_counter()
            self.redraws = self._cached_redraws(self.images, classes, [str(p) for p in paths])
            val_classes = [s for s in self.styles for _ in val[s][:options.val_per_style]]
            redraw = functools.partial(redraws, options.generator, options.encoder, steps=options.redraw_steps)
            self.val_redraws = image_list(redraw(stack_images(self.val_targets), val_classes))
            self.sample_redraws = image_list(redraw(stack_images(self.sample_targets), [s for s in self.styles if val[s]][:6]))
            log.info("redrew %d renders with %s in %.1f s", len(self.redraws) + len(self.val_redraws),
                     options.generator, time.perf_counter() - t0)

    def _cached_redraws(self, images: torch.Tensor, classes: list[str], names: list[str]) -> torch.Tensor:
        """:func:`redraws` of the training images, kept in ``RUN/cache/redraws.safetensors`` (keyed by the
        weights' hashes, the steps and the file list) so that resuming a run does not pay for them again."""
        from safetensors.torch import load_file, save_file

        o, h = self.opt, self.inputs_sha256
        key = hashlib.sha256(json.dumps([h["generator"], h["encoder"], o.redraw_steps, names]).encode()).hexdigest()
        path = self.run_dir / "cache" / "redraws.safetensors"
        if path.exists():
            from safetensors import safe_open

            with safe_open(str(path), "pt") as f:
                if (f.metadata() or {}).get("key") == key:
                    return load_file(str(path))["redraws"]
        out = redraws(o.generator, o.encoder, images, classes, steps=o.redraw_steps)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        save_file({"redraws": out.contiguous()}, str(tmp), metadata={"key": key})
        os.replace(tmp, path)
        return out

    # ------------------------------------------------------------------------------------- state
    def _info(self) -> dict[str, Any]:
        return {"step": self.step, "wall_time_s": self.wall_time_s, "options": self.opt.to_json(),
                "config": self.model.cfg.to_json(), "styles": list(self.styles), "inputs_sha256": self.inputs_sha256}

    def resume(self) -> bool:
        if not self.state_path.exists():
            return False
        saved = ckpt.read_training_info(self.state_path)
        if "options" not in saved or "config" not in saved or "lpips_weight" not in saved["options"]:
            raise EmogetError(f"'{self.state_path}' is not an upscaler training state; use a new --out folder")
        check_resume_options(self.run_dir, saved["options"], self.opt, RESUME_MUTABLE)
        _, info = ckpt.load_training_state(self.state_path, modules={"model": self.model},
                                           optimizers={"adam": (self.optim, self.model)})
        self.step, self.wall_time_s = int(info["step"]), float(info["wall_time_s"])
        self.inputs_sha256 = info.get("inputs_sha256", self.inputs_sha256)  # what the run started from
        truncate_log(self.run_dir / "log.jsonl", self.step)
        log.info("resumed %s at step %d", self.run_dir, self.step)
        return True

    def save(self) -> Path:
        ckpt.save_training_state(self.state_path, modules={"model": self.model},
                                 optimizers={"adam": (self.optim, self.model)}, rng={}, info=self._info())
        return save_upscaler(self.model, self.run_dir / "upscaler", extra={"origin": self.origin()})

    def origin(self) -> dict[str, Any]:
        return {"command": self.command, "data_manifest_sha256": self.manifest_sha256, "steps": self.step,
                "wall_time_s": round(self.wall_time_s, 1), "hardware": hardware(),
                "train_options": self.opt.to_json(), "styles": list(self.styles),
                **{f"{name}_sha256": h for name, h in self.inputs_sha256.items()}}

    # ------------------------------------------------------------------------------------- steps
    def lr_at(self, step: int) -> float:
        o = self.opt
        t = min(step / max(o.steps, 1), 1.0)
        return o.lr_min + 0.5 * (o.lr - o.lr_min) * (1 + math.cos(math.pi * t))

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(input ``[B,3,c/4,c/4]``, target ``[B,3,c,c]``) in ``[-1,1]``: a pure function of (seed, step)."""
        o = self.opt
        g = torch.Generator().manual_seed(o.seed * 1_000_003 + step)
        idx = torch.randint(len(self.images), (o.batch,), generator=g)
        side = self.images.shape[-1]
        pos = torch.randint(0, (side - o.crop) // SCALE + 1, (o.batch, 2), generator=g) * SCALE
        flip = torch.rand(o.batch, generator=g) < 0.5
        crops = []
        for i, (y, x), f in zip(idx.tolist(), pos.tolist(), flip.tolist(), strict=True):
            c = self.images[i, :, y:y + o.crop, x:x + o.crop]
            crops.append(c.flip(-1) if f else c)
        clean = torch.stack(crops).float() / 127.5 - 1
        hr = shade(clean, generator=g, p=o.shade_p) if o.shade_p else clean
        lr = degrade(hr, generator=g, plain_p=o.plain_p)
        if self.redraws is not None:
            # Redrawn pairs: the generator's redraw of the crop, the unshaded render as the target.
            use = (torch.rand(o.batch, generator=g) < o.redraw_p).tolist()
            c, lr, hr = o.crop // SCALE, lr.clone(), hr.clone()
            for j, (i, (y, x), f) in enumerate(zip(idx.tolist(), pos.tolist(), flip.tolist(), strict=True)):
                if use[j]:
                    r = self.redraws[i, :, y // SCALE:y // SCALE + c, x // SCALE:x // SCALE + c]
                    lr[j] = (r.flip(-1) if f else r).float() / 127.5 - 1
                    hr[j] = clean[j]
        return lr, hr

    def train_step(self) -> dict[str, float]:
        o = self.opt
        for group in self.optim.param_groups:
            group["lr"] = self.lr_at(self.step)
        lr_img, hr = self.batch(self.step)
        self.model.train()
        y = self.model(lr_img)
        l1 = (y - hr).abs().mean()
        stats = {"l1": l1.item()}
        loss = l1
        if o.edge_weight:
            e = edge_loss(y, hr)
            loss = loss + o.edge_weight * e
            stats["edge"] = e.item()
        if o.lpips_weight:
            from face2emoticon.lpips import get_lpips

            p = get_lpips("alex")(y, hr).mean()
            loss = loss + o.lpips_weight * p
            stats["lpips"] = p.item()
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        self.optim.step()
        self.step += 1
        stats["loss"] = loss.item()
        return stats

    def validate(self, *, lpips: bool = True) -> dict[str, Any]:
        self.model.eval()
        self.last_val = evaluate(self.model, self.val_targets, lpips=lpips, redrawn=self.val_redraws)
        self.last_val_step = self.step
        return self.last_val

    def write_samples(self) -> Path:
        path = self.run_dir / "samples" / f"step-{self.step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.model.eval()
        Image.fromarray(sample_grid(self.model, self.sample_targets, redrawn=self.sample_redraws)).save(path)
        return path

    def run(self, *, on_step: Callable[[int], None] | None = None, val_lpips: bool = True) -> UpscaleTrainResult:
        """Resume if possible, then train to ``steps``; stops at ``minutes``, Ctrl-C or SIGTERM (checkpointed)."""
        o = self.opt
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if not self.resume():
            ckpt.atomic_write_text(self.run_dir / "config.json", json.dumps(
                {"options": o.to_json(), "config": self.model.cfg.to_json(), "command": self.command,
                 "data": str(self.data), "data_manifest_sha256": self.manifest_sha256}, indent=2) + "\n")
        log_path = self.run_dir / "log.jsonl"
        last, interrupted = run_steps(
            self, log_path=log_path, steps=o.steps, batch=o.batch, minutes=o.minutes, log_every=o.log_every,
            val_every=o.val_every, sample_every=o.sample_every, checkpoint_minutes=o.checkpoint_minutes,
            validate=lambda: self.validate(lpips=val_lpips), log_extra=lambda step: {"lr": round(self.lr_at(step), 7)},
            on_step=on_step)
        if not interrupted and o.val_every and self.last_val_step != self.step:
            append_jsonl(log_path, {"step": self.step, "val": self.validate(lpips=val_lpips)})
        path = self.save()
        if interrupted:
            raise KeyboardInterrupt
        if not last or last.get("step") != self.step:
            last = {"step": self.step, "wall_time_s": round(self.wall_time_s, 1)}
        return UpscaleTrainResult(step=self.step, run_dir=self.run_dir, model_path=path,
                                  wall_time_s=self.wall_time_s, last_log=last, val=self.last_val)


def train_upscaler(data: str | os.PathLike, run_dir: str | os.PathLike, options: UpscaleTrainOptions | None = None,
                   *, command: str | None = None, on_step: Callable[[int], None] | None = None,
                   val_lpips: bool = True) -> UpscaleTrainResult:
    """Train (or resume) an upscaler run; see the module docstring for the run folder."""
    trainer = UpscaleTrainer(data, run_dir, options or UpscaleTrainOptions(), command=command)
    return trainer.run(on_step=on_step, val_lpips=val_lpips)


# ---------------------------------------------------------------------------------------------- helpers

def stack_images(images: list[np.ndarray]) -> torch.Tensor:
    """uint8 ``[H,W,3]`` images → uint8 ``[N,3,H,W]``."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


def image_list(images: torch.Tensor) -> list[np.ndarray]:
    """uint8 ``[N,3,H,W]`` → a list of uint8 ``[H,W,3]`` images."""
    return [im.permute(1, 2, 0).numpy() for im in images]


def _manifest_sha256(data: Path) -> str | None:
    """The data manifest's hash (``manifest.json`` in the data folder or its parent), if there is one."""
    for p in (data / "manifest.json", data.parent / "manifest.json"):
        if p.exists():
            try:
                return json.loads(p.read_text()).get("manifest_sha256")
            except ValueError:
                return None
    return None
