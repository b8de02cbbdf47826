"""In-domain encoder: image -> ``ws``, a start point for inversion (Zhu et al. 2020's in-domain recipe).

``E(img, c)`` predicts ``ws [B,num_ws,w_dim]`` as the class's mean w plus a shared offset plus a
per-layer offset (the last layer starts at zero, so an untrained encoder answers the mean w).
It is trained on the generator's own samples, where the true latent is known:

    loss = latent_weight * ||E(G(w)) - w||^2 + mse_weight * MSE(G(E(G(w))), G(w))
           + lpips_weight * LPIPS(G(E(G(w))), G(w))

:func:`train_encoder` (``emoget train-encoder``) is resumable: every batch is drawn from a seed
derived from (seed, step), and the encoder with its optimiser is checkpointed atomically, so a
killed run re-run with the same command continues exactly where its last checkpoint was.
"""
from __future__ import annotations

import copy
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from face2emoticon import checkpoint
from face2emoticon.invert import frozen, prepare_target
from face2emoticon.lpips import get_lpips, resize_for_lpips
from landmarks.errors import WeightsError

log = logging.getLogger(__name__)

FORMAT = "emoget-encoder/1"


@dataclass(frozen=True)
class EncoderConfig:
    """Architecture of :class:`Encoder`; ``channels(r) = min(channel_base // r, channel_max)``."""

    resolution: int = 64
    num_ws: int = 10
    w_dim: int = 256
    class_names: tuple[str, ...] = ()
    channel_base: int = 4096
    channel_max: int = 256
    hidden: int = 512

    def __post_init__(self) -> None:
        r = self.resolution
        if r < 4 or r & (r - 1):
            raise ValueError(f"resolution must be a power of two >= 4, got {r}")
        object.__setattr__(self, "class_names", tuple(self.class_names))

    @property
    def c_dim(self) -> int:
        return len(self.class_names)

    def channels(self, res: int) -> int:
        return max(1, min(self.channel_base // res, self.channel_max))

    def to_json(self) -> dict[str, Any]:
        return {"kind": "encoder", **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EncoderConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known - {"kind"}
        if unknown:
            raise WeightsError(f"encoder config has unknown fields {sorted(unknown)}; it was written by a newer emoget")
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def for_generator(cls, G, **overrides: Any) -> EncoderConfig:
        """The config that matches generator ``G`` (resolution, num_ws, w_dim, styles)."""
        return cls(resolution=G.cfg.resolution, num_ws=G.num_ws, w_dim=G.w_dim, class_names=G.class_names,
                   **overrides)


class Encoder(nn.Module):
    """``forward(img [B,3,R,R] in [-1,1], c [B] long | None) -> ws [B,num_ws,w_dim]``.

    ``w_avg [max(c_dim,1), w_dim]`` holds each class's mean w (set by :func:`train_encoder` from the
    generator); predictions are offsets from it.
    """

    def __init__(self, cfg: EncoderConfig, *, seed: int | None = 0):
        super().__init__()
        self.cfg = cfg
        fork = torch.random.fork_rng(devices=[])
        with fork:
            if seed is not None:
                torch.manual_seed(seed)
            r = cfg.resolution
            self.from_rgb = nn.Conv2d(3, cfg.channels(r), 1)
            blocks = []
            while r > 4:
                cin, cout = cfg.channels(r), cfg.channels(r // 2)
                blocks += [nn.Conv2d(cin, cin, 3, padding=1), nn.LeakyReLU(0.2),
                           nn.Conv2d(cin, cout, 3, padding=1), nn.LeakyReLU(0.2), nn.AvgPool2d(2)]
                r //= 2
            self.blocks = nn.Sequential(*blocks)
            self.fc = nn.Linear(cfg.channels(4) * 16 + cfg.c_dim, cfg.hidden)
            self.out = nn.Linear(cfg.hidden, (cfg.num_ws + 1) * cfg.w_dim)
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)
        self.register_buffer("w_avg", torch.zeros(max(cfg.c_dim, 1), cfg.w_dim))

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        cfg = self.cfg
        if img.ndim != 4 or img.shape[1:] != (3, cfg.resolution, cfg.resolution):
            raise ValueError(f"encoder input must be [B,3,{cfg.resolution},{cfg.resolution}], got {list(img.shape)}")
        x = self.blocks(F.leaky_relu(self.from_rgb(img), 0.2)).flatten(1)
        if cfg.c_dim:
            if c is None:
                raise ValueError("this encoder is conditional: pass c, a [B] long tensor of class indices")
            x = torch.cat([x, F.one_hot(c.long().view(-1), cfg.c_dim).to(x.dtype)], dim=1)
            base = self.w_avg[c.long().view(-1)]
        else:
            base = self.w_avg[:1].expand(x.shape[0], -1)
        d = self.out(F.leaky_relu(self.fc(x), 0.2)).view(-1, cfg.num_ws + 1, cfg.w_dim)
        return base[:, None] + d[:, :1] + d[:, 1:]

    @torch.no_grad()
    def encode(self, target, *, class_index: int | None) -> torch.Tensor:
        """One image (``uint8 [H,W,3]`` or float ``[1,3,H,W]`` in ``[-1,1]``) -> ``ws [1,num_ws,w_dim]``."""
        p = self.w_avg
        x = prepare_target(target, self.cfg.resolution, device=p.device, dtype=p.dtype)
        c = torch.tensor([class_index], device=p.device) if self.cfg.c_dim else None
        return self(x, c)


def save_encoder(E: Encoder, path, *, extra: dict[str, Any] | None = None) -> Path:
    """Write ``path.safetensors`` + ``path.json`` atomically; returns the ``.safetensors`` path."""
    stem = _stem(path)
    checkpoint._atomic_save_tensors(E.state_dict(), stem.with_suffix(".safetensors"), {"format": FORMAT})
    info = {"format": FORMAT, "config": E.cfg.to_json(), **(extra or {})}
    checkpoint.atomic_write_text(stem.with_suffix(".json"), json.dumps(info, indent=2) + "\n")
    return stem.with_suffix(".safetensors")


def load_encoder(path, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> Encoder:
    """Load an encoder written by :func:`save_encoder` (strict keys and shapes), eval mode, no gradients."""
    stem = _stem(path)
    jpath = stem.with_suffix(".json")
    if not jpath.exists():
        raise WeightsError(f"no config '{jpath}' beside the encoder weights; an encoder is a .safetensors with its "
                           ".json (written by `emoget train-encoder`)")
    info = json.loads(jpath.read_text())
    if info.get("format") != FORMAT:
        raise WeightsError(f"'{jpath}' has format {info.get('format')!r}, expected {FORMAT!r}; it is not an encoder")
    E = Encoder(EncoderConfig.from_json(info["config"]), seed=None)
    tensors, _ = checkpoint._read_tensors(stem.with_suffix(".safetensors"))
    checkpoint.load_state_strict(E, tensors, what=f"encoder '{stem.with_suffix('.safetensors')}'")
    return E.to(device=device, dtype=dtype).eval().requires_grad_(False)


def _stem(path) -> Path:
    p = Path(path)
    return p.with_suffix("") if p.suffix in (".safetensors", ".json") else p


# ------------------------------------------------------------------------------------------------ training


@dataclass(frozen=True)
class EncoderTrainOptions:
    """Options of :func:`train_encoder` (and the flags of ``emoget train-encoder``)."""

    steps: int = 20000
    batch_size: int = 8
    lr: float = 1e-3
    seed: int = 0
    latent_weight: float = 1.0
    mse_weight: float = 1.0
    lpips_weight: float = 1.0
    truncation_min: float = 0.5  # each sample's w is pulled toward its class mean by psi ~ U(min, 1)
    checkpoint_minutes: float = 5.0
    checkpoint_every: int = 0  # also checkpoint every N steps (0: time-based only)
    log_every: int = 50
    val_size: int = 16
    channel_base: int = 4096
    channel_max: int = 256
    init: str = ""  # start from this encoder's weights (same generator and width) instead of a fresh network

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("steps must be >= 0, batch_size >= 1 and lr > 0")
        if not 0 <= self.truncation_min <= 1:
            raise ValueError(f"truncation_min must be in [0,1], got {self.truncation_min}")

    # Options that may differ when resuming (the rest must match the run folder's).
    RESUMABLE_CHANGES = ("steps", "checkpoint_minutes", "checkpoint_every", "log_every")


@dataclass
class EncoderTrainResult:
    encoder_path: Path
    steps: int
    resumed_from: int
    val: dict[str, float] = field(default_factory=dict)


def sample_batch(G, step: int, *, batch_size: int, seed: int, truncation_min: float, class_means: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """The training batch of ``step``: ``(img [B,3,R,R], c [B] | None, ws [B,num_ws,w_dim])``, seeded by (seed, step)."""
    p = class_means
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    z = torch.randn(batch_size, G.z_dim, generator=g).to(p)
    c = torch.randint(0, G.c_dim, (batch_size,), generator=g).to(p.device) if G.c_dim else None
    psi = (truncation_min + (1 - truncation_min) * torch.rand(batch_size, 1, generator=g)).to(p)
    with torch.no_grad():
        w = G.mapping(z, c)[:, 0]
        mean = class_means[c] if c is not None else class_means[:1]
        w = mean + psi * (w - mean)
        ws = w[:, None].repeat(1, G.num_ws, 1)
        img = G.synthesis(ws, noise_mode="const")
    return img, c, ws


def encoder_losses(E: Encoder, G, img: torch.Tensor, c: torch.Tensor | None, ws: torch.Tensor
                   ) -> dict[str, torch.Tensor]:
    """The three training terms (batch means): ``latent``, ``mse``, ``lpips``."""
    pred = E(img, c)
    rec = G.synthesis(pred, noise_mode="const")
    lp = get_lpips("alex", device=img.device, dtype=img.dtype)
    return {"latent": F.mse_loss(pred, ws), "mse": F.mse_loss(rec, img),
            "lpips": lp(resize_for_lpips(rec), resize_for_lpips(img)).mean()}


def train_encoder(G, out_dir, *, options: EncoderTrainOptions = EncoderTrainOptions(), command: str = "",
                  generator_sha256: str = "",
                  progress: Callable[[int, int, dict], None] | None = None) -> EncoderTrainResult:
    """Train (or resume training) an encoder for generator ``G`` into ``out_dir``.

    ``command`` and ``generator_sha256`` (of ``G``'s file) are provenance, written beside the options and the result.

    Writes ``out_dir/options.json``, ``log.jsonl`` (one JSON object per logged step), the resume state
    ``checkpoint/state.safetensors`` (every ``checkpoint_minutes`` and at the end), and the result
    ``encoder.safetensors`` + ``encoder.json``. ``progress(step, steps, terms)`` is called every step.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    p = next(G.parameters())
    device, dtype = p.device, p.dtype
    G = copy.deepcopy(G)
    cfg = EncoderConfig.for_generator(G, channel_base=options.channel_base, channel_max=options.channel_max)
    E = Encoder(cfg, seed=options.seed).to(device=device, dtype=dtype)
    with torch.no_grad():
        classes = range(G.c_dim) if G.c_dim else [None]
        E.w_avg.copy_(torch.cat([G.mean_w(k) for k in classes]).to(E.w_avg))
    if options.init:
        init = load_encoder(options.init)
        if init.cfg != cfg:
            raise WeightsError(f"the encoder '{options.init}' does not fit this generator and width ({init.cfg} vs "
                               f"{cfg}); start without --init or give the matching --channel-base/--channel-max")
        E.load_state_dict(init.state_dict())
    opt = torch.optim.Adam(E.parameters(), lr=options.lr, betas=(0.9, 0.99))
    state_path = out / "checkpoint" / "state.safetensors"
    start = 0
    opts_json = asdict(options)
    if state_path.exists():
        _, info = checkpoint.load_training_state(state_path, modules={"E": E}, optimizers={"opt": (opt, E)})
        _check_resume(info, opts_json, cfg)
        start = int(info["step"])
        log.info("resuming encoder training at step %d from %s", start, state_path)
    checkpoint.atomic_write_text(out / "options.json", json.dumps(
        {"options": opts_json, "config": cfg.to_json(), "generator": G.cfg.to_json(), "command": command,
         "generator_sha256": generator_sha256},
        indent=2) + "\n")

    val = sample_batch(G, -1, batch_size=options.val_size, seed=options.seed + 7919,
                       truncation_min=options.truncation_min, class_means=E.w_avg)
    weights = {"latent": options.latent_weight, "mse": options.mse_weight, "lpips": options.lpips_weight}
    last_ckpt = time.monotonic()
    t0 = time.monotonic()
    val_terms: dict[str, float] = {}

    def save_state(step: int) -> None:
        checkpoint.save_training_state(state_path, modules={"E": E}, optimizers={"opt": (opt, E)}, rng={},
                                       info={"step": step, "options": opts_json, "config": cfg.to_json()})

    with frozen(G):
        E.train()
        for step in range(start, options.steps):
            img, c, ws = sample_batch(G, step, batch_size=options.batch_size, seed=options.seed,
                                      truncation_min=options.truncation_min, class_means=E.w_avg)
            terms = encoder_losses(E, G, img, c, ws)
            loss = sum(weights[k] * v for k, v in terms.items())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done = step + 1
            scalars = {k: float(v.detach()) for k, v in terms.items()}
            if not math.isfinite(float(loss.detach())):
                raise FloatingPointError(f"encoder loss became {float(loss)} at step {done}; lower --lr and resume "
                                         "from the last checkpoint")
            if progress is not None:
                progress(done, options.steps, scalars)
            if done % options.log_every == 0 or done == options.steps:
                val_terms = _validate(E, G, val)
                record = {"step": done, **scalars, **{f"val_{k}": v for k, v in val_terms.items()},
                          "seconds": round(time.monotonic() - t0, 2)}
                with open(out / "log.jsonl", "a") as f:
                    f.write(json.dumps(record) + "\n")
            due = (options.checkpoint_every and done % options.checkpoint_every == 0) or \
                (time.monotonic() - last_ckpt) >= options.checkpoint_minutes * 60
            if due or done == options.steps:
                save_state(done)
                last_ckpt = time.monotonic()
    E.eval()
    if not val_terms:
        val_terms = _validate(E, G, val)
    path = save_encoder(E, out / "encoder", extra={"steps": options.steps, "val": val_terms, "command": command,
                                                          "generator_sha256": generator_sha256})
    return EncoderTrainResult(encoder_path=path, steps=options.steps, resumed_from=start, val=val_terms)


@torch.no_grad()
def _validate(E: Encoder, G, batch) -> dict[str, float]:
    img, c, ws = batch
    was = E.training
    E.eval()
    terms = {k: float(v) for k, v in encoder_losses(E, G, img, c, ws).items()}
    E.train(was)
    return terms


def _check_resume(info: dict[str, Any], opts: dict[str, Any], cfg: EncoderConfig) -> None:
    saved = info.get("options", {})
    diff = [k for k in opts if k not in EncoderTrainOptions.RESUMABLE_CHANGES and saved.get(k) != opts[k]]
    if diff or info.get("config") != json.loads(json.dumps(cfg.to_json())):
        what = ", ".join(f"{k}: {saved.get(k)!r} -> {opts[k]!r}" for k in diff) or "the generator/encoder shape"
        raise WeightsError(f"the run folder was started with other options ({what}); re-run with the same options "
                           "or use a new --out folder")
