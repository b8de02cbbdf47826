"""A compact ×4 super-resolution CNN for the generator's stills (64 px → 256 px display size).

Architecture (ESPCN/EDSR-like, all at the low resolution until the end)::

    x [B,3,h,w] ─ conv3x3 → C ─ blocks × (conv-LReLU-conv + skip) ─ conv → 4·U1, shuffle ×2, LReLU
                 ─ conv → 4·U2, shuffle ×2, LReLU ─ conv → 3 ─(+)→ y [B,3,4h,4w]
    └──────────────────────────── bicubic ×4 ─────────────────────────────┘

The network predicts the residual over a bicubic upsample, so an untrained (zero-tail) model is plain
bicubic. Files: ``x.safetensors`` (tensors only) + ``x.json`` (``{"format", "config"}`` and bookkeeping),
loaded with strict keys.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from face2emoticon.checkpoint import (
    _atomic_save_tensors,
    _read_tensors,
    _stem,
    atomic_write_text,
    load_state_strict,
)
from landmarks.errors import WeightsError

FORMAT = "emoget-upscaler/1"
SCALE = 4


@dataclass(frozen=True)
class UpscalerConfig:
    """``channels`` wide residual ``blocks`` at the input resolution, then two pixel-shuffle ×2 stages.

    ``negative_slope`` of the leaky ReLUs (0 = ReLU; a small slope keeps units from dying early in training,
    when the zero-initialised tail passes no gradient back).
    """

    channels: int = 32
    blocks: int = 4
    up_channels: tuple[int, int] = (32, 16)
    negative_slope: float = 0.1

    def __post_init__(self):
        object.__setattr__(self, "up_channels", tuple(int(c) for c in self.up_channels))
        if self.channels < 1 or self.blocks < 0 or len(self.up_channels) != 2 or min(self.up_channels) < 1:
            raise ValueError(f"bad upscaler config {self}")

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "up_channels": list(self.up_channels), "scale": SCALE}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> UpscalerConfig:
        if d.get("scale", SCALE) != SCALE:
            raise WeightsError(f"upscaler scale {d.get('scale')} is not supported (only ×{SCALE})")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class _Block(nn.Module):
    def __init__(self, c: int, slope: float):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)
        self.slope = slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.leaky_relu(self.conv1(x), self.slope))


class Upscaler(nn.Module):
    """``forward(x)``: ``[B,3,h,w]`` in ``[-1,1]`` → ``[B,3,4h,4w]`` (about ``[-1,1]``, not clamped)."""

    def __init__(self, cfg: UpscalerConfig):
        super().__init__()
        self.cfg = cfg
        c, (u1, u2) = cfg.channels, cfg.up_channels
        self.head = nn.Conv2d(3, c, 3, padding=1)
        self.blocks = nn.Sequential(*[_Block(c, cfg.negative_slope) for _ in range(cfg.blocks)])
        self.up1 = nn.Conv2d(c, 4 * u1, 3, padding=1)
        self.up2 = nn.Conv2d(u1, 4 * u2, 3, padding=1)
        self.tail = nn.Conv2d(u2, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = F.interpolate(x, scale_factor=SCALE, mode="bicubic", align_corners=False)
        f = self.head(x)
        f = f + self.blocks(f)
        s = self.cfg.negative_slope
        f = F.leaky_relu(F.pixel_shuffle(self.up1(f), 2), s)
        f = F.leaky_relu(F.pixel_shuffle(self.up2(f), 2), s)
        return skip + self.tail(f)


def build(cfg: UpscalerConfig | None = None, *, seed: int | None = 0) -> Upscaler:
    """A fresh upscaler; the residual tail starts at zero, so it starts as bicubic. ``seed`` fixes the init."""
    cfg = cfg or UpscalerConfig()
    if seed is None:
        model = Upscaler(cfg)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = Upscaler(cfg)
    nn.init.zeros_(model.tail.weight)
    nn.init.zeros_(model.tail.bias)
    for b in model.blocks:  # residual branches start small (stable at high learning rates)
        b.conv2.weight.data.mul_(0.1)
    return model


def save_upscaler(model: Upscaler, path: str | os.PathLike, *, extra: dict[str, Any] | None = None) -> os.PathLike:
    """Write ``path.safetensors`` + ``path.json`` atomically; returns the ``.safetensors`` path."""
    stem = _stem(path)
    _atomic_save_tensors(model.state_dict(), stem.with_suffix(".safetensors"), {"format": FORMAT})
    info = {"format": FORMAT, "config": model.cfg.to_json(), **(extra or {})}
    atomic_write_text(stem.with_suffix(".json"), json.dumps(info, indent=2) + "\n")
    return stem.with_suffix(".safetensors")


def load_upscaler(path: str | os.PathLike, device: str | torch.device = "cpu") -> Upscaler:
    """An upscaler saved by :func:`save_upscaler` (strict keys and shapes), in eval mode, without grads."""
    stem = _stem(path)
    jpath = stem.with_suffix(".json")
    if not jpath.exists():
        raise WeightsError(f"no upscaler config '{jpath}'; an upscaler is a .safetensors with its .json beside it "
                           "(see `emoget train-upscaler`)")
    try:
        info = json.loads(jpath.read_text())
    except ValueError as exc:
        raise WeightsError(f"'{jpath}' is not valid JSON ({exc}); re-export the upscaler") from exc
    if info.get("format") != FORMAT:
        raise WeightsError(f"'{jpath}' has format {info.get('format')!r}, expected {FORMAT!r}; it is not an "
                           "upscaler checkpoint")
    model = Upscaler(UpscalerConfig.from_json(info["config"]))
    tensors, _ = _read_tensors(stem.with_suffix(".safetensors"))
    load_state_strict(model, tensors, what=f"'{stem.with_suffix('.safetensors')}'")
    return model.to(device).eval().requires_grad_(False)


def to_tensor(image: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    """uint8 ``[H,W,3]`` → float32 ``[1,3,H,W]`` in ``[-1,1]``."""
    x = torch.tensor(image).permute(2, 0, 1)[None].float()
    return (x / 127.5 - 1.0).to(device)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """``[1,3,H,W]`` (or ``[3,H,W]``) in ``[-1,1]`` → uint8 ``[H,W,3]`` (clamped, rounded)."""
    x = x[0] if x.ndim == 4 else x
    return ((x.detach().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()


def upscale(model: Upscaler, image: np.ndarray) -> np.ndarray:
    """uint8 ``[H,W,3]`` → uint8 ``[4H,4W,3]``, on the model's device."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 [H,W,3] RGB image, got {image.dtype} {image.shape}")
    device = next(model.parameters()).device
    with torch.no_grad():
        return to_uint8(model(to_tensor(image, device)))
