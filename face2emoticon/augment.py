"""Adaptive discriminator augmentation, differentiable, cheap on CPU.

Choice and why: the ADA *controller* (Karras et al. 2020) with a DiffAugment-sized set of operations.

* Style sets are small (hundreds to a few thousand images per style), which is exactly where a discriminator
  overfits; a fixed-strength DiffAugment policy either under-regularises large sets or leaks augmentations
  into the generator on small ones. ADA's controller fixes that: the probability ``p`` is steered by the sign
  of D on real images, ``r_t = E[sign(D(x_real))]``, towards a target (0.6), so augmentation is as strong as
  the data needs and no stronger.
* Every operation is applied with probability ``p < 1`` per image and is invertible in distribution (flips,
  90-degree rotations, integer translations with reflection, and colour transforms), so by the ADA argument
  the generator cannot learn them ("non-leaking").
* All operations are differentiable with respect to the image (one ``grid_sample`` in nearest mode for the
  geometry, which lands exactly on pixel centres, and one 4x4 colour matrix), so generator gradients pass
  through, as they must when fakes are augmented too. The full ADA pipeline (arbitrary rotations and
  scalings through wavelet up/down-sampling) costs more than the discriminator itself on a CPU; these ops
  cost a few percent.

Images are ``[B,3,H,W]`` in ``[-1,1]``; every random draw uses the caller's ``torch.Generator``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _maybe(p: float, shape, generator, device) -> torch.Tensor:
    return (torch.rand(shape, generator=generator) < p).to(device)


def augment(x: torch.Tensor, p: float, *, generator: torch.Generator, xflip: bool = True, rotate90: bool = True,
            translate: float = 0.125, brightness: float = 0.2, contrast: float = 0.5, lumaflip: bool = True,
            hue: bool = True, saturation: float = 1.0) -> torch.Tensor:
    """Augment ``x [B,3,H,W]`` with probability ``p`` per operation per image; differentiable in ``x``.

    The strengths follow ADA's ``bgc`` pipeline: brightness N(0, 0.2) added, contrast and saturation
    log-normal (std 0.5 and 1 in log2), luma flip, hue rotation uniform in [-pi, pi], integer translation up
    to ``translate`` of the size.
    """
    if p <= 0:
        return x
    b, _, h, w = x.shape
    dev, dt = x.device, torch.float32
    # --- geometry: a pixel-centre-exact affine map, sampled with nearest + reflection.
    theta = torch.eye(3, dtype=dt).repeat(b, 1, 1)
    if xflip:
        flip = _maybe(p, (b,), generator, "cpu") & (torch.rand(b, generator=generator) < 0.5)
        theta[:, 0, 0] = torch.where(flip, -1.0, 1.0)
    if rotate90:
        k = torch.randint(0, 4, (b,), generator=generator)
        k = torch.where(_maybe(p, (b,), generator, "cpu"), k, torch.zeros_like(k))
        ang = k.to(dt) * (math.pi / 2)
        rot = torch.zeros(b, 3, 3, dtype=dt)
        rot[:, 0, 0], rot[:, 0, 1] = ang.cos().round(), -ang.sin().round()
        rot[:, 1, 0], rot[:, 1, 1] = ang.sin().round(), ang.cos().round()
        rot[:, 2, 2] = 1
        theta = rot @ theta
    if translate > 0:
        t = (torch.rand(b, 2, generator=generator) * 2 - 1) * translate
        t = torch.where(_maybe(p, (b, 1), generator, "cpu"), t, torch.zeros_like(t))
        tx, ty = (t[:, 0] * w).round() * 2 / w, (t[:, 1] * h).round() * 2 / h
        theta[:, 0, 2] += tx
        theta[:, 1, 2] += ty
    if not torch.equal(theta, torch.eye(3).expand(b, 3, 3)):
        grid = F.affine_grid(theta[:, :2].to(dev), [b, 3, h, w], align_corners=False)
        x = F.grid_sample(x.float(), grid, mode="nearest", padding_mode="reflection", align_corners=False)
    # --- colour: one 4x4 matrix per image (ADA's formulation).
    c = torch.eye(4, dtype=dt).repeat(b, 1, 1)
    luma = torch.tensor([1.0, 1.0, 1.0, 0.0]) / math.sqrt(3)
    if brightness > 0:
        v = torch.randn(b, generator=generator) * brightness
        v = torch.where(_maybe(p, (b,), generator, "cpu"), v, torch.zeros_like(v))
        m = torch.eye(4).repeat(b, 1, 1)
        m[:, :3, 3] = v[:, None]
        c = m @ c
    if contrast > 0:
        v = torch.exp2(torch.randn(b, generator=generator) * contrast)
        v = torch.where(_maybe(p, (b,), generator, "cpu"), v, torch.ones_like(v))
        m = torch.diag_embed(torch.stack([v, v, v, torch.ones_like(v)], 1))
        c = m @ c
    lum_outer = torch.outer(luma, luma)
    if lumaflip:
        i = torch.randint(0, 2, (b,), generator=generator).to(dt)
        i = torch.where(_maybe(p, (b,), generator, "cpu"), i, torch.zeros_like(i))
        c = (torch.eye(4) - 2 * lum_outer * i.view(b, 1, 1)) @ c
    if hue:
        ang = (torch.rand(b, generator=generator) * 2 - 1) * math.pi
        ang = torch.where(_maybe(p, (b,), generator, "cpu"), ang, torch.zeros_like(ang))
        c = _rotate3d(luma[:3], ang) @ c
    if saturation > 0:
        v = torch.exp2(torch.randn(b, generator=generator) * saturation)
        v = torch.where(_maybe(p, (b,), generator, "cpu"), v, torch.ones_like(v))
        m = lum_outer + (torch.eye(4) - lum_outer) * v.view(b, 1, 1)
        m[:, 3, 3] = 1
        c = m @ c
    if not torch.equal(c, torch.eye(4).expand(b, 4, 4)):
        c = c.to(device=dev, dtype=x.dtype)
        x = torch.einsum("bij,bjhw->bihw", c[:, :3, :3], x) + c[:, :3, 3].reshape(b, 3, 1, 1)
    return x


def _rotate3d(axis: torch.Tensor, ang: torch.Tensor) -> torch.Tensor:
    """Homogeneous 4x4 rotations by ``ang [B]`` about the unit ``axis [3]``."""
    ax, ay, az = axis.tolist()
    s, c = ang.sin(), ang.cos()
    cc = 1 - c
    r = torch.stack([
        torch.stack([ax * ax * cc + c, ax * ay * cc - az * s, ax * az * cc + ay * s, torch.zeros_like(c)], -1),
        torch.stack([ay * ax * cc + az * s, ay * ay * cc + c, ay * az * cc - ax * s, torch.zeros_like(c)], -1),
        torch.stack([az * ax * cc - ay * s, az * ay * cc + ax * s, az * az * cc + c, torch.zeros_like(c)], -1),
        torch.stack([torch.zeros_like(c)] * 3 + [torch.ones_like(c)], -1),
    ], 1)
    return r


class AdaptiveAugment:
    """ADA controller: ``p`` moves by ``batch*interval/(speed_kimg*1000)`` towards ``E[sign(D(real))] = target``.

    ``state()`` / ``load_state()`` round-trip exactly for resumable training.
    """

    def __init__(self, *, p: float = 0.0, target: float | None = 0.6, speed_kimg: float = 100.0, interval: int = 4):
        self.p, self.target, self.speed_kimg, self.interval = float(p), target, speed_kimg, interval
        self.sign_sum, self.count, self.steps = 0.0, 0, 0

    def __call__(self, x: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
        return augment(x, self.p, generator=generator)

    def accumulate(self, real_logits: torch.Tensor) -> None:
        """Feed D's logits on (augmented) reals; adjusts ``p`` every ``interval`` calls when adaptive."""
        if self.target is None:
            return
        self.sign_sum += float(real_logits.detach().float().sign().sum())
        self.count += real_logits.numel()
        self.steps += 1
        if self.steps % self.interval == 0 and self.count:
            rt = self.sign_sum / self.count
            step = self.count / (self.speed_kimg * 1000)
            self.p = float(min(max(self.p + step * ((rt > self.target) - (rt < self.target)), 0.0), 1.0))
            self.sign_sum, self.count = 0.0, 0

    @property
    def last_rt(self) -> float | None:
        return self.sign_sum / self.count if self.count else None

    def state(self) -> dict:
        return {"p": self.p, "sign_sum": self.sign_sum, "count": self.count, "steps": self.steps}

    def load_state(self, state: dict) -> None:
        self.p, self.sign_sum = float(state["p"]), float(state["sign_sum"])
        self.count, self.steps = int(state["count"]), int(state["steps"])
