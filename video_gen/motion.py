"""The MoCoGAN-style landmark-motion generator and its two discriminators.

MoCoGAN (Tulyakov et al., 2018) splits a video into *content* (fixed over the
clip) and *motion* (a path through a latent space, driven by per-frame noise
through a recurrent network). Here the content is the face's neutral landmarks
in face units (``[68,2]``, see :mod:`video_gen.geometry`), the motion is per-frame
noise ``eps_t`` through a GRU, and the condition is the expression (an embedding)
and its intensity. The generator emits a displacement for each of the 68 points
at each of ``T+1`` loop phases; frame 0's output is subtracted from every frame,
so the loop starts exactly on the neutral face; whatever is left at phase ``T`` (the
drift, kept small by training) is spread linearly over the loop, so every generated
loop closes exactly.

* :class:`MotionGenerator`: ``(content [B,68,2], label [B], intensity [B], eps [B,T+1,E], z [B,Z]) → [B,T+1,68,2]``
* :class:`FrameDiscriminator`: one frame (content + displacement) → logit, class-conditional by projection
* :class:`SequenceDiscriminator`: temporal convolutions over the whole sequence → logit, class-conditional

Weights are safetensors with the :class:`MotionConfig` as JSON beside them, loaded
strictly; :func:`load_motion_model` returns the shipped default (cached).
"""
from __future__ import annotations

import functools
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from landmarks.errors import WeightsError

log = logging.getLogger(__name__)

DEFAULT_WEIGHTS = "motion-mocogan-68"
N_POINTS = 68


@dataclass(frozen=True)
class MotionConfig:
    """Architecture of the motion model (saved as JSON beside the weights)."""

    class_names: tuple[str, ...] = ()
    frames: int = 16  # loop phases; the generator emits frames + 1 rows (the last closes the loop)
    eps_dim: int = 8  # per-frame motion noise
    z_dim: int = 8  # per-sequence noise (initial GRU state)
    embed_dim: int = 16
    hidden: int = 96
    d_hidden: int = 128
    out_scale: float = 0.1  # displacements are a tenth of the eye distance at most, typically
    extra: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_json(self) -> str:
        d = asdict(self)
        d["class_names"] = list(self.class_names)
        return json.dumps(d, indent=2)

    @classmethod
    def from_json(cls, text: str) -> MotionConfig:
        d = json.loads(text)
        d["class_names"] = tuple(d["class_names"])
        return cls(**d)


class _Condition(nn.Module):
    """Expression embedding + intensity → ``[B, embed_dim + 1]``."""

    def __init__(self, cfg: MotionConfig):
        super().__init__()
        self.embed = nn.Embedding(max(1, cfg.num_classes), cfg.embed_dim)

    def forward(self, label: torch.Tensor, intensity: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.embed(label), intensity[:, None].to(self.embed.weight.dtype)], 1)


class MotionGenerator(nn.Module):
    """Content + motion noise + condition → landmark displacements (face units).

    forward(content [B,68,2], label [B] long, intensity [B] in [0,1], eps [B,T+1,eps_dim], z [B,z_dim])
    → ``[B,T+1,68,2]`` with rows 0 and T exactly zero (a closed loop).
    """

    def __init__(self, cfg: MotionConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.embed_dim + 1
        self.cond = _Condition(cfg)
        self.init = nn.Sequential(nn.Linear(2 * N_POINTS + c + cfg.z_dim, cfg.hidden), nn.Tanh())
        self.gru = nn.GRU(cfg.eps_dim + c, cfg.hidden, batch_first=True)
        self.head = nn.Sequential(nn.Linear(cfg.hidden + c, 128), nn.LeakyReLU(0.2), nn.Linear(128, 2 * N_POINTS))

    def forward(self, content, label, intensity, eps, z):
        raw = self.raw(content, label, intensity, eps, z)
        ramp = torch.linspace(0.0, 1.0, raw.shape[1], device=raw.device, dtype=raw.dtype)[None, :, None, None]
        return raw - ramp * raw[:, -1:]

    def raw(self, content, label, intensity, eps, z):
        """The recurrent output before loop closure: ``[B,T+1,68,2]``, row 0 zero; row T is the drift that
        :meth:`forward` spreads linearly over the loop (training keeps it small)."""
        b, t1, _ = eps.shape
        cond = self.cond(label, intensity)
        h0 = self.init(torch.cat([content.reshape(b, -1), cond, z], 1))
        seq, _ = self.gru(torch.cat([eps, cond[:, None].expand(b, t1, -1)], 2), h0[None].contiguous())
        out = self.head(torch.cat([seq, cond[:, None].expand(b, t1, -1)], 2)).reshape(b, t1, N_POINTS, 2)
        out = out * self.cfg.out_scale
        return out - out[:, :1]

    def sample_noise(self, batch: int, *, generator: torch.Generator | None = None, device=None):
        """``(eps [B,T+1,eps_dim], z [B,z_dim])`` standard normal."""
        cfg = self.cfg
        dev = device or next(self.parameters()).device
        eps = torch.randn(batch, cfg.frames + 1, cfg.eps_dim, generator=generator, device=dev)
        z = torch.randn(batch, cfg.z_dim, generator=generator, device=dev)
        return eps, z


class FrameDiscriminator(nn.Module):
    """One frame: ``(content [B,68,2], disp [B,68,2], label [B], intensity [B]) → [B]`` logits."""

    def __init__(self, cfg: MotionConfig):
        super().__init__()
        h = cfg.d_hidden
        self.body = nn.Sequential(nn.Linear(4 * N_POINTS + 1, h), nn.LeakyReLU(0.2), nn.Linear(h, h), nn.LeakyReLU(0.2))
        self.out = nn.Linear(h, 1)
        self.proj = nn.Embedding(max(1, cfg.num_classes), h)

    def forward(self, content, disp, label, intensity):
        b = content.shape[0]
        x = torch.cat([content.reshape(b, -1), disp.reshape(b, -1) * 10.0, intensity[:, None]], 1)
        h = self.body(x)
        return self.out(h)[:, 0] + (self.proj(label) * h).sum(1)


class SequenceDiscriminator(nn.Module):
    """The whole sequence, temporal convolutions: ``(content, disp [B,T+1,68,2], label, intensity) → [B]``."""

    def __init__(self, cfg: MotionConfig):
        super().__init__()
        h = cfg.d_hidden
        cin = 2 * N_POINTS * 2 + 1  # displacement, its velocity, intensity
        self.content = nn.Linear(2 * N_POINTS, h)
        self.conv = nn.Sequential(
            nn.Conv1d(cin, h, 3, padding=1), nn.LeakyReLU(0.2),
            nn.Conv1d(h, h, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv1d(h, h, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
        )
        self.out = nn.Linear(h, 1)
        self.proj = nn.Embedding(max(1, cfg.num_classes), h)

    def forward(self, content, disp, label, intensity):
        b, t1 = disp.shape[:2]
        d = disp.reshape(b, t1, -1) * 10.0
        vel = torch.diff(d, dim=1, prepend=d[:, -2:-1])  # periodic: the frame before 0 is T-1
        x = torch.cat([d, vel * 3.0, intensity[:, None, None].expand(b, t1, 1)], 2).transpose(1, 2)
        h = self.conv(x).mean(2) + self.content(content.reshape(b, -1))
        return self.out(h)[:, 0] + (self.proj(label) * h).sum(1)


# -- saving / loading -----------------------------------------------------------------------------------------------------
def save_motion_model(G: MotionGenerator, path: str | Path) -> Path:
    """Write ``path`` (``.safetensors``) and its config ``path.json`` beside it."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in G.state_dict().items()}, str(path))
    path.with_suffix(".json").write_text(G.cfg.to_json() + "\n")
    return path


def load_motion_model(path: str | Path | None = None, *, device: str = "cpu") -> MotionGenerator:
    """The motion generator at ``path`` (safetensors + JSON, strict keys); ``None`` = the shipped default, cached."""
    if path is None:
        return _load_default(device)
    return _load(Path(path), device)


@functools.lru_cache(maxsize=2)
def _load_default(device: str) -> MotionGenerator:
    import weights

    return _load(weights.path_of(DEFAULT_WEIGHTS), device)


def _load(path: Path, device: str) -> MotionGenerator:
    from safetensors.torch import load_file

    cfg_path = path.with_suffix(".json")
    if not path.exists() or not cfg_path.exists():
        raise WeightsError(f"motion weights {path} (with {cfg_path.name} beside it) not found; "
                           "train them with `emoget train-motion` or reinstall emoget")
    try:
        cfg = MotionConfig.from_json(cfg_path.read_text())
        G = MotionGenerator(cfg)
        G.load_state_dict(load_file(str(path), device=device), strict=True)
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise WeightsError(f"{path} is not a motion model this version can load ({exc}); retrain it") from exc
    return G.to(device).eval().requires_grad_(False)


@torch.no_grad()
def generate(G: MotionGenerator, content: np.ndarray, expression: str, *, intensity: float = 1.0,
             seed: int | None = None, generator: torch.Generator | None = None, n: int = 1) -> np.ndarray:
    """``n`` takes of ``expression`` for the neutral face ``content [68,2]`` (face units).

    Returns ``float32 [n,T+1,68,2]`` displacements in face units (row 0 zero; row T closes the loop).
    ``seed`` or ``generator`` make it deterministic.
    """
    cfg = G.cfg
    if expression not in cfg.class_names:
        from landmarks.errors import EmogetError

        raise EmogetError(f"the motion model knows {', '.join(cfg.class_names)}, not {expression!r}; "
                          "retrain it with `emoget train-motion` after adding an expression")
    if generator is None:
        generator = torch.Generator().manual_seed(int(seed) if seed is not None else int(torch.seed() % (2**31)))
    dev = next(G.parameters()).device
    c = torch.as_tensor(np.asarray(content, np.float32), device=dev)[None].expand(n, -1, -1)
    label = torch.full((n,), cfg.class_names.index(expression), dtype=torch.long, device=dev)
    inten = torch.full((n,), float(np.clip(intensity, 0.0, 1.0)), device=dev)
    eps, z = G.sample_noise(n, generator=generator, device=dev)
    return G(c, label, inten, eps, z).cpu().numpy().astype(np.float32)
