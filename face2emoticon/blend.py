"""Network blending (layer swapping, Pinkney & Adler 2020): a pure function over resolution-named weights.

The synthesis blocks ``synthesis.b{res}.*`` below ``swap_resolution`` come from one network and those at and
above it from the other; ``alpha`` interpolates the "tuned" side between the base and the tuned weights
(``0`` = base everywhere, ``1`` = the tuned parent's weights exactly), a smooth strength control. Taking the
low resolutions from the base and the high ones from the tuned network keeps the base's face geometry with the
tuned network's textures and colours; the other direction keeps the style's shapes with the base's rendering.
The mapping network (and with it the class names) comes whole from the network chosen by ``mapping_from``.
"""
from __future__ import annotations

import re

import numpy as np
import torch

from face2emoticon.networks import Generator

_BLOCK = re.compile(r"^synthesis\.b(\d+)\.")


def resolution_of(name: str) -> int | None:
    """The block resolution of a generator tensor name (``synthesis.b16.conv0.weight`` -> 16; mapping -> None)."""
    m = _BLOCK.match(name)
    return int(m.group(1)) if m else None


def blend_state_dicts(base: dict[str, torch.Tensor], tuned: dict[str, torch.Tensor], *, swap_resolution: int,
                      alpha: float = 1.0, low_from: str = "base", mapping_from: str = "tuned"
                      ) -> dict[str, torch.Tensor]:
    """Blend two generator state dicts by name (see the module docstring). Inputs are not modified."""
    if low_from not in ("base", "tuned") or mapping_from not in ("base", "tuned"):
        raise ValueError("low_from and mapping_from must be 'base' or 'tuned'")
    out = {}
    mapping_src = base if mapping_from == "base" else tuned
    for name in mapping_src:
        if resolution_of(name) is None:
            out[name] = mapping_src[name].clone()
    for name, b in base.items():
        res = resolution_of(name)
        if res is None:
            continue
        if name not in tuned or tuned[name].shape != b.shape:
            raise ValueError(f"the two generators differ at {name}; blend networks of the same architecture "
                             "(fine-tune one from the other)")
        tuned_side = (res < swap_resolution) == (low_from == "tuned")
        if tuned_side and alpha == 1:
            out[name] = tuned[name].clone()
        elif tuned_side and alpha != 0:
            out[name] = torch.lerp(b.float(), tuned[name].float(), alpha).to(b.dtype)
        else:
            out[name] = b.clone()
    return out


def blend(base: Generator, tuned: Generator, *, swap_resolution: int, alpha: float = 1.0, low_from: str = "base",
          mapping_from: str = "tuned") -> Generator:
    """A new generator: blocks below ``swap_resolution`` from ``low_from``'s side, the rest from the other.

    ``swap_resolution <= 4`` with ``low_from="base"`` gives the tuned synthesis exactly; ``swap_resolution``
    above the output resolution gives the base synthesis exactly.
    """
    a, b = base.cfg, tuned.cfg
    arch = ("resolution", "w_dim", "channel_base", "channel_max", "blur_kernel")
    if any(getattr(a, k) != getattr(b, k) for k in arch):
        raise ValueError(f"cannot blend different architectures: {[(k, getattr(a, k), getattr(b, k)) for k in arch]}")
    cfg = (b if mapping_from == "tuned" else a).replace(conv_clamp=a.conv_clamp)
    sd = blend_state_dicts(base.state_dict(), tuned.state_dict(), swap_resolution=swap_resolution, alpha=alpha,
                           low_from=low_from, mapping_from=mapping_from)
    p = next(base.parameters())
    out = Generator(cfg, seed=None).to(device=p.device, dtype=p.dtype)
    out.load_state_dict(sd, strict=True)
    return out.eval().requires_grad_(False)


@torch.no_grad()
def blend_sheet(base: Generator, tuned: Generator, *, class_index: int | None = None, seeds=(0, 1, 2, 3),
                swap_resolutions=None, alpha: float = 1.0, low_from: str = "base", mapping_from: str = "tuned",
                truncation_psi: float = 0.7) -> tuple[np.ndarray, list[str]]:
    """Sample sheet across swap resolutions: ``uint8 [rows*R, len(seeds)*R, 3]`` and the row labels.

    Rows: the base, one row per swap resolution, the tuned network; columns: ``seeds`` (same z in every row).
    """
    res = base.cfg.resolution
    swaps = list(swap_resolutions or [r for r in base.cfg.block_resolutions if r > 4])
    nets = [("base", base)] + [(f"swap {s}", blend(base, tuned, swap_resolution=s, alpha=alpha, low_from=low_from,
                                                   mapping_from=mapping_from)) for s in swaps] + [("tuned", tuned)]
    rows, labels = [], []
    for label, G in nets:
        G = G.eval()
        z = torch.stack([torch.randn(G.z_dim, generator=torch.Generator().manual_seed(s)) for s in seeds])
        p = next(G.parameters())
        c = None
        if G.c_dim:
            c = torch.full((len(seeds),), int(class_index or 0), dtype=torch.long, device=p.device)
        img = G(z.to(device=p.device, dtype=p.dtype), c, truncation_psi=truncation_psi).float().cpu()
        rows.append(((img.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8))
        labels.append(label)
    x = torch.stack(rows)  # [rows, n, 3, R, R]
    return x.permute(0, 3, 1, 4, 2).reshape(len(rows) * res, len(seeds) * res, 3).numpy(), labels
