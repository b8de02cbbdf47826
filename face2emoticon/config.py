"""Architecture configs for the conditional StyleGAN2: frozen dataclasses saved as JSON beside the weights.

The channel count at resolution ``r`` is ``min(channel_base // r, channel_max)`` (the NVlabs rule), so
rosinality's ``channel_multiplier=m`` is ``channel_base=16384*m, channel_max=512``.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from landmarks.errors import WeightsError


def _check_resolution(resolution: int) -> None:
    if resolution < 4 or resolution > 1024 or resolution & (resolution - 1):
        raise ValueError(f"resolution must be a power of two in 4..1024, got {resolution}")


@dataclass(frozen=True)
class GeneratorConfig:
    """Architecture of :class:`face2emoticon.networks.Generator`.

    ``class_names`` names the styles; ``c_dim = len(class_names)`` and an empty tuple means
    unconditional. ``blur_kernel`` is the separable FIR used for 2x up-sampling.
    ``conv_clamp`` clamps activations to +-value (NVlabs uses 256 for mixed precision; ``None`` = off).
    """

    resolution: int = 64
    z_dim: int = 256
    w_dim: int = 256
    mapping_layers: int = 4
    mapping_lr_mul: float = 0.01
    channel_base: int = 8192
    channel_max: int = 256
    class_names: tuple[str, ...] = ()
    embed_dim: int | None = None  # width of the class embedding (None = w_dim)
    blur_kernel: tuple[int, ...] = (1, 3, 3, 1)
    conv_clamp: float | None = None
    w_avg_beta: float = 0.995

    def __post_init__(self) -> None:
        _check_resolution(self.resolution)
        object.__setattr__(self, "class_names", tuple(self.class_names))
        object.__setattr__(self, "blur_kernel", tuple(self.blur_kernel))
        if len(set(self.class_names)) != len(self.class_names):
            raise ValueError(f"class_names must be unique, got {self.class_names}")

    @property
    def c_dim(self) -> int:
        return len(self.class_names)

    @property
    def log2_resolution(self) -> int:
        return int(math.log2(self.resolution))

    @property
    def block_resolutions(self) -> list[int]:
        return [2**i for i in range(2, self.log2_resolution + 1)]

    @property
    def num_ws(self) -> int:
        return 2 * self.log2_resolution - 2

    def channels(self, res: int) -> int:
        return min(self.channel_base // res, self.channel_max)

    def to_json(self) -> dict[str, Any]:
        return {"kind": "generator", **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any] | str) -> GeneratorConfig:
        return _from_json(cls, data, "generator")

    def replace(self, **changes: Any) -> GeneratorConfig:
        d = asdict(self)
        d.update(changes)
        return GeneratorConfig(**d)


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Architecture of the residual :class:`face2emoticon.networks.Discriminator`.

    Conditioning is a projection: the class embedding (``cmap_dim`` wide) is dotted with the last features.
    """

    resolution: int = 64
    channel_base: int = 8192
    channel_max: int = 256
    class_names: tuple[str, ...] = ()
    cmap_dim: int | None = None  # None = channels at 4 px
    mbstd_group_size: int = 4
    mbstd_channels: int = 1
    blur_kernel: tuple[int, ...] = (1, 3, 3, 1)
    conv_clamp: float | None = None

    def __post_init__(self) -> None:
        _check_resolution(self.resolution)
        object.__setattr__(self, "class_names", tuple(self.class_names))
        object.__setattr__(self, "blur_kernel", tuple(self.blur_kernel))

    @property
    def c_dim(self) -> int:
        return len(self.class_names)

    @property
    def block_resolutions(self) -> list[int]:
        return [2**i for i in range(int(math.log2(self.resolution)), 2, -1)]

    def channels(self, res: int) -> int:
        return min(self.channel_base // res, self.channel_max)

    @classmethod
    def matching(cls, g: GeneratorConfig, **changes: Any) -> DiscriminatorConfig:
        """The discriminator that goes with generator config ``g`` (same resolution, channels, classes)."""
        d = {"resolution": g.resolution, "channel_base": g.channel_base, "channel_max": g.channel_max,
                 "class_names": g.class_names, "blur_kernel": g.blur_kernel, "conv_clamp": g.conv_clamp}
        d.update(changes)
        return cls(**d)

    def to_json(self) -> dict[str, Any]:
        return {"kind": "discriminator", **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any] | str) -> DiscriminatorConfig:
        return _from_json(cls, data, "discriminator")


def _from_json(cls, data: dict[str, Any] | str, kind: str):
    if isinstance(data, str):
        data = json.loads(data)
    data = dict(data)
    got = data.pop("kind", kind)
    if got != kind:
        raise WeightsError(f"config is for a {got!r}, expected a {kind!r}; pass the matching file")
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise WeightsError(f"unknown {kind} config fields {sorted(unknown)}; the file was written by a newer version")
    for key in ("class_names", "blur_kernel"):
        if key in data:
            data[key] = tuple(data[key])
    return cls(**data)


DEFAULT_64 = GeneratorConfig()
"""The default architecture at 64 px (about 1 s per step at batch 8 on a 2-core CPU in bf16)."""


def toy_config(**changes: Any) -> GeneratorConfig:
    """A tiny 16 px, 2-class architecture (32 channels at most) for tests and examples."""
    d = {"resolution": 16, "z_dim": 16, "w_dim": 16, "mapping_layers": 2, "channel_base": 256, "channel_max": 32,
             "class_names": ("a", "b")}
    d.update(changes)
    return GeneratorConfig(**d)
