"""GAN inversion: find the latent whose image matches a target, by optimisation (MSE + real LPIPS).

The recipe is the StyleGAN2 projector's (Karras et al. 2020): Adam on ``w`` (one vector broadcast to
every layer) or ``w+`` (one per layer), starting from the class's mean ``w`` or from an encoder's
guess, with a cosine learning-rate ramp, a decaying Gaussian perturbation of ``w`` early on, and
optionally the per-layer noise maps with their multi-scale autocorrelation penalty.

From a start that is already close (an encoder's guess), ``optimizer="lbfgs"`` converges much faster:
L-BFGS with a strong-Wolfe line search, where every loss-and-gradient evaluation counts as one step,
so a step costs what an Adam step costs (one forward and backward pass).

By default the noise maps are left alone, so the returned ``ws`` alone reproduce ``image`` through
``G.synthesis(ws, noise_mode="const")`` (and can be fed to a blended/stylised network).
"""
from __future__ import annotations

import contextlib
import copy
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from face2emoticon.lpips import get_lpips, resize_for_lpips

if TYPE_CHECKING:  # pragma: no cover
    from face2emoticon.encoder import Encoder

log = logging.getLogger(__name__)

Progress = Callable[[int, int, dict], None]


@dataclass
class InversionResult:
    """``ws [1,num_ws,w_dim]``, ``image [1,3,R,R]`` in ``[-1,1]`` (``G.synthesis(ws)``), and the curves.

    ``losses[i]`` is the total loss at step ``i``; ``terms`` holds each component per step
    (``mse``, ``lpips``, ``noise``). ``noise`` maps noise-buffer names to the optimised ``[r,r]``
    maps when ``optimize_noise`` was on (empty otherwise).
    """

    ws: torch.Tensor
    image: torch.Tensor
    losses: list[float]
    terms: dict[str, list[float]] = field(default_factory=dict)
    noise: dict[str, torch.Tensor] = field(default_factory=dict)
    class_index: int | None = None
    mode: str = "w+"

    @property
    def latent(self) -> torch.Tensor:
        """Alias of :attr:`ws`."""
        return self.ws

    def image_uint8(self) -> np.ndarray:
        """The result image as ``uint8 [R,R,3]``."""
        return to_uint8(self.image)

    def save(self, path) -> None:
        """Write ``ws`` (and noise maps) to a safetensors file with the class index and mode as metadata."""
        from safetensors.torch import save_file

        tensors = {"ws": self.ws.detach().float().cpu().contiguous()}
        tensors.update({f"noise.{k}": v.detach().float().cpu().contiguous() for k, v in self.noise.items()})
        meta = {"class_index": "" if self.class_index is None else str(self.class_index), "mode": self.mode,
                "final_loss": f"{self.losses[-1]:.6g}" if self.losses else ""}
        save_file(tensors, str(path), metadata=meta)


def load_latent(path) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, str]]:
    """Read a latent written by :meth:`InversionResult.save`: ``(ws [1,num_ws,w_dim], noise, metadata)``."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
    if "ws" not in tensors:
        from landmarks.errors import WeightsError

        raise WeightsError(f"{path} holds no 'ws' tensor; it is not a latent written by `emoget invert`")
    noise = {k.removeprefix("noise."): v for k, v in tensors.items() if k.startswith("noise.")}
    return tensors["ws"], noise, meta


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """``[1,3,H,W]`` or ``[3,H,W]`` in ``[-1,1]`` -> ``uint8 [H,W,3]``."""
    if img.ndim == 4:
        img = img[0]
    return ((img.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()


def prepare_target(target, resolution: int, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """Any target image -> ``float [1,3,R,R]`` in ``[-1,1]``.

    Accepts ``uint8 [H,W,3]`` (numpy or torch) or float ``[1,3,H,W]`` / ``[3,H,W]`` in ``[-1,1]``;
    non-square inputs are centre-cropped, then resized to ``resolution`` (area down, bicubic up).
    """
    if isinstance(target, np.ndarray):
        target = torch.from_numpy(np.require(target, requirements=("C", "W")))
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"target must be a numpy array or a torch tensor, got {type(target).__name__}")
    if target.dtype == torch.uint8:
        if target.ndim != 3 or target.shape[-1] != 3:
            raise ValueError(f"a uint8 target must be [H,W,3] RGB, got {list(target.shape)}")
        x = target.permute(2, 0, 1)[None].float() / 127.5 - 1
    else:
        x = target[None] if target.ndim == 3 else target
        if x.ndim != 4 or x.shape[:2] != (1, 3):
            raise ValueError(f"a float target must be [1,3,H,W] or [3,H,W] in [-1,1], got {list(target.shape)}")
        x = x.float()
    h, w = x.shape[-2:]
    if h != w:
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        x = x[..., top: top + s, left: left + s]
    if x.shape[-1] > resolution:
        x = F.interpolate(x, size=(resolution, resolution), mode="area")
    elif x.shape[-1] < resolution:
        x = F.interpolate(x, size=(resolution, resolution), mode="bicubic", align_corners=False).clamp(-1, 1)
    return x.to(device=device, dtype=dtype)


def prepare_mask(mask, resolution: int, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """A weight map (numpy/torch ``[H,W]``, ``[1,1,H,W]``; values in ``[0,1]``) -> ``[1,1,R,R]``."""
    m = torch.as_tensor(np.asarray(mask, dtype=np.float32)) if not isinstance(mask, torch.Tensor) else mask.float()
    while m.ndim < 4:
        m = m[None]
    if m.shape[:2] != (1, 1):
        raise ValueError(f"mask must be [H,W] or [1,1,H,W], got {list(m.shape)}")
    if m.min() < 0 or m.max() > 1:
        raise ValueError("mask values must lie in [0,1]")
    if m.shape[-1] != resolution or m.shape[-2] != resolution:
        m = F.interpolate(m, size=(resolution, resolution), mode="bilinear", align_corners=False)
    return m.to(device=device, dtype=dtype)


def face_mask(points: np.ndarray, *, image_size: int, resolution: int, floor: float = 0.25,
              forehead: float = 0.35, feather: float = 0.06) -> np.ndarray:
    """Face-region weights from 68 iBUG landmarks: ``float32 [R,R]`` in ``[floor,1]``.

    ``points [68,2]`` are pixels of the (square, aligned) crop of side ``image_size``. The face is
    the convex hull of the landmarks, extended upwards by ``forehead`` x the eye-to-chin height to
    cover the forehead, feathered by a Gaussian of ``feather`` x ``resolution``; the background
    keeps ``floor`` so hair and outline still count a little.
    """
    import cv2

    pts = np.asarray(points, dtype=np.float64)
    if pts.shape != (68, 2):
        raise ValueError(f"points must be [68,2] iBUG landmarks, got {pts.shape}")
    pts = pts * (resolution / float(image_size))
    brows = pts[17:27]
    height = pts[8, 1] - pts[36:48, 1].mean()
    lifted = brows - np.array([0.0, forehead * height])
    hull = cv2.convexHull(np.concatenate([pts, lifted]).astype(np.float32)).astype(np.int32)
    m = np.zeros((resolution, resolution), np.float32)
    cv2.fillConvexPoly(m, hull, 1.0, lineType=cv2.LINE_AA)
    sigma = max(feather * resolution, 0.5)
    m = cv2.GaussianBlur(m, (0, 0), sigma)
    return (floor + (1 - floor) * np.clip(m, 0, 1)).astype(np.float32)


def w_stats(G, class_index: int | None, *, n: int = 2048, seed: int = 123) -> tuple[torch.Tensor, float]:
    """Class mean ``w [1,w_dim]`` (``G.mean_w``) and the scalar spread ``sqrt(E||w - mean||^2)`` over ``n`` draws."""
    p = next(G.parameters())
    mean = G.mean_w(class_index).to(p)
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, G.z_dim, generator=g).to(p)
    c = torch.full((n,), int(class_index), dtype=torch.long, device=p.device) if G.c_dim else None
    with torch.no_grad():
        w = G.mapping(z, c)[:, 0]
    return mean, float((w - mean).square().sum(-1).mean().sqrt())


def noise_buffers(G) -> dict[str, torch.Tensor]:
    """The generator's constant noise maps (buffers named ``*noise_const``), by name."""
    return {name: buf for name, buf in G.named_buffers() if name.endswith("noise_const")}


@contextlib.contextmanager
def noise_applied(G, noise: dict[str, torch.Tensor]) -> Iterator[None]:
    """Temporarily load optimised noise maps (from :attr:`InversionResult.noise`) into ``G``."""
    bufs = noise_buffers(G)
    saved = {k: bufs[k].detach().clone() for k in noise}
    try:
        with torch.no_grad():
            for k, v in noise.items():
                bufs[k].copy_(v)
        yield
    finally:
        with torch.no_grad():
            for k, v in saved.items():
                bufs[k].copy_(v)


def noise_regularization(maps: list[torch.Tensor]) -> torch.Tensor:
    """Multi-scale autocorrelation of the noise maps (StyleGAN2 projector): 0 for white noise."""
    reg = maps[0].new_zeros(())
    for m in maps:
        x = m.view(1, 1, *m.shape[-2:])
        while True:
            reg = reg + (x * torch.roll(x, 1, dims=3)).mean() ** 2 + (x * torch.roll(x, 1, dims=2)).mean() ** 2
            if x.shape[-1] <= 8:
                break
            x = F.avg_pool2d(x, 2)
    return reg


def _start_latent(G, start, *, class_index, target, encoder, mean_w) -> torch.Tensor:
    if isinstance(start, torch.Tensor):
        ws = start.detach().to(mean_w)
        if ws.ndim == 1:
            ws = ws[None]
        if ws.ndim == 2:
            ws = ws[None] if ws.shape[0] == G.num_ws and ws.shape[0] != 1 else ws[:, None].expand(-1, G.num_ws, -1)
        if ws.shape != (1, G.num_ws, G.w_dim):
            raise ValueError(f"start latent must be [w_dim], [1,w_dim], [num_ws,w_dim] or [1,num_ws,w_dim] for "
                             f"this generator (num_ws={G.num_ws}, w_dim={G.w_dim}), got {list(start.shape)}")
        return ws.clone()
    if start == "mean":
        return mean_w[:, None].expand(1, G.num_ws, -1).clone()
    if start == "encoder":
        if encoder is None:
            raise ValueError("start='encoder' needs encoder=...; load one with face2emoticon.encoder.load_encoder")
        with torch.no_grad():
            return encoder.encode(target, class_index=class_index).to(mean_w)
    raise ValueError(f"start must be 'mean', 'encoder' or a latent tensor, got {start!r}")


def invert(G, target, *, class_index: int | None, num_steps: int = 300, mode: str = "w+",
           start: str | torch.Tensor | None = None, encoder: Encoder | None = None, mse_weight: float = 1.0,
           lpips_weight: float = 1.0, lpips_net: str = "alex", optimize_noise: bool = False,
           noise_reg_weight: float = 1e5, lr: float = 0.05, lr_rampup: float = 0.05, lr_rampdown: float = 0.25,
           initial_noise_factor: float | None = None, noise_ramp: float = 0.75, mask=None,
           optimizer: str = "adam", lbfgs_history: int = 20,
           generator: torch.Generator | None = None, progress: Progress | None = None) -> InversionResult:
    """Invert ``target`` into generator ``G``'s latent space.

    G: a :class:`face2emoticon.networks.Generator` (any device/dtype; left unchanged).
    target: ``uint8 [H,W,3]`` or float ``[1,3,H,W]`` in ``[-1,1]``; resized to ``G``'s resolution.
    class_index: the style (``None`` for an unconditional generator).
    mode: ``"w"`` (one vector for every layer) or ``"w+"`` (one per layer).
    start: ``"mean"`` (the class's mean w), ``"encoder"`` (needs ``encoder``), or a latent tensor;
    ``None`` = the encoder when one is given, else the mean.
    Loss: ``mse_weight * MSE + lpips_weight * LPIPS(lpips_net)`` (+ ``noise_reg_weight`` x noise
    autocorrelation when ``optimize_noise``). ``mask`` (``[H,W]`` in ``[0,1]``, e.g. :func:`face_mask`)
    weights the image: outside it the target is blended into the output before both losses.
    Learning rate: ``lr`` with a linear warm-up over ``lr_rampup`` and a cosine ramp-down over the
    last ``lr_rampdown`` fraction of the steps. ``initial_noise_factor`` x the w spread perturbs w
    early on (default 0.05 from the mean, 0 from an encoder/tensor start), decaying over ``noise_ramp``.
    optimizer: ``"adam"`` (the schedule above) or ``"lbfgs"`` (L-BFGS, ``lbfgs_history`` pairs,
    strong-Wolfe line search; ``num_steps`` counts loss-and-gradient evaluations, line-search ones
    included; ``lr``, its ramps and the w perturbation do not apply; not with ``optimize_noise``).
    generator: ``torch.Generator`` for the random draws (default: seed 0), so results repeat.
    progress: called as ``progress(step, num_steps, terms)`` after every step.
    """
    if mode not in ("w", "w+"):
        raise ValueError(f"mode must be 'w' or 'w+', got {mode!r}")
    if num_steps < 0:
        raise ValueError(f"num_steps must be >= 0, got {num_steps}")
    if optimizer not in ("adam", "lbfgs"):
        raise ValueError(f"optimizer must be 'adam' or 'lbfgs', got {optimizer!r}")
    if optimizer == "lbfgs" and optimize_noise:
        raise ValueError("optimizer='lbfgs' cannot optimise the noise maps (they are renormalised after every "
                         "step); use optimizer='adam' with optimize_noise=True")
    if lbfgs_history < 1:
        raise ValueError(f"lbfgs_history must be >= 1, got {lbfgs_history}")
    p = next(G.parameters())
    device, dtype = p.device, p.dtype
    res = G.cfg.resolution
    if G.c_dim and class_index is None:
        raise ValueError(f"this generator is conditional: pass class_index (styles: {list(G.class_names)})")
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    if start is None:
        start = "encoder" if encoder is not None else "mean"
    target_img = prepare_target(target, res, device=device, dtype=dtype)
    weight = prepare_mask(mask, res, device=device, dtype=dtype) if mask is not None else None

    if optimize_noise:
        G = copy.deepcopy(G)  # noise maps are optimised in place: never touch the caller's model
    with frozen(G):
        return _invert(G, target_img, weight, class_index=class_index, num_steps=num_steps, mode=mode, start=start,
                       encoder=encoder, weights={"mse": mse_weight, "lpips": lpips_weight, "noise": noise_reg_weight},
                       lpips_net=lpips_net, optimize_noise=optimize_noise, lr=lr, lr_rampup=lr_rampup,
                       lr_rampdown=lr_rampdown, initial_noise_factor=initial_noise_factor, noise_ramp=noise_ramp,
                       optimizer=optimizer, lbfgs_history=lbfgs_history, g=g, progress=progress)


@contextlib.contextmanager
def frozen(module: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Eval mode and no parameter gradients inside the block; the module's own flags come back after."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    training = module.training
    module.eval().requires_grad_(False)
    try:
        yield module
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        module.train(training)


def _invert(G, target_img, weight, *, class_index, num_steps, mode, start, encoder, weights, lpips_net,
            optimize_noise, lr, lr_rampup, lr_rampdown, initial_noise_factor, noise_ramp, optimizer, lbfgs_history, g,
            progress):
    device, dtype = target_img.device, target_img.dtype
    mean_w, w_spread = w_stats(G, class_index)
    ws0 = _start_latent(G, start, class_index=class_index, target=target_img, encoder=encoder, mean_w=mean_w)
    if initial_noise_factor is None:
        initial_noise_factor = 0.05 if isinstance(start, str) and start == "mean" else 0.0

    w_opt = (ws0.mean(1, keepdim=True) if mode == "w" else ws0).detach().clone().requires_grad_(True)
    params: list[torch.Tensor] = [w_opt]
    noise_maps: dict[str, torch.Tensor] = {}
    if optimize_noise:
        noise_maps = noise_buffers(G)
        with torch.no_grad():
            for buf in noise_maps.values():
                buf.copy_(torch.randn(buf.shape, generator=g, device=g.device).to(buf))
                buf.requires_grad_(True)
        params += list(noise_maps.values())

    lp = get_lpips(lpips_net, device=device, dtype=dtype) if weights["lpips"] else None
    target_feats = lp.features(resize_for_lpips(target_img)) if lp is not None else None

    def render(w: torch.Tensor) -> torch.Tensor:
        ws = w.expand(-1, G.num_ws, -1) if mode == "w" else w
        return G.synthesis(ws, noise_mode="const")

    def losses_of(img: torch.Tensor) -> dict[str, torch.Tensor]:
        if weight is not None:
            img = weight * img + (1 - weight) * target_img
        terms = {"mse": F.mse_loss(img, target_img)}
        if lp is not None:
            terms["lpips"] = sum(lp.distance_from_features(lp.features(resize_for_lpips(img)), target_feats))[0]
        if optimize_noise:
            terms["noise"] = noise_regularization(list(noise_maps.values()))
        return terms

    def objective(w: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        terms = losses_of(render(w))
        return sum(weights[k] * v for k, v in terms.items()), terms

    losses: list[float] = []
    curves: dict[str, list[float]] = {}

    def record(loss: torch.Tensor, terms: dict[str, torch.Tensor]) -> None:
        losses.append(float(loss.detach()))
        for k, v in terms.items():
            curves.setdefault(k, []).append(float(v.detach()))
        if progress is not None:
            progress(len(losses), num_steps, {k: curves[k][-1] for k in terms})

    if optimizer == "lbfgs":
        _lbfgs(w_opt, lambda: objective(w_opt), num_steps=num_steps, history=lbfgs_history, record=record)
    else:
        opt = torch.optim.Adam(params, betas=(0.9, 0.999), lr=lr)
        for step in range(num_steps):
            t = step / num_steps
            w_noise_scale = w_spread * initial_noise_factor * max(0.0, 1.0 - t / noise_ramp) ** 2
            ramp = min(1.0, (1.0 - t) / lr_rampdown) if lr_rampdown > 0 else 1.0
            ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
            ramp *= min(1.0, (step + 1) / max(1.0, lr_rampup * num_steps))
            for group in opt.param_groups:
                group["lr"] = lr * ramp
            w_noise = (torch.randn(w_opt.shape, generator=g, device=g.device).to(w_opt) * w_noise_scale
                       if w_noise_scale else 0.0)
            loss, terms = objective(w_opt + w_noise)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if optimize_noise:
                with torch.no_grad():
                    for buf in noise_maps.values():
                        buf.sub_(buf.mean()).div_(buf.square().mean().sqrt())
            record(loss, terms)

    with torch.no_grad():
        ws = (w_opt.expand(-1, G.num_ws, -1) if mode == "w" else w_opt).detach().clone()
        image = G.synthesis(ws, noise_mode="const").detach()
    noise = {k: v.detach().clone() for k, v in noise_maps.items()}
    for buf in noise_maps.values():
        buf.requires_grad_(False)
    if losses:
        log.info("inverted in %d steps (%s, start=%s): loss %.4f -> %.4f", num_steps, mode,
                 start if isinstance(start, str) else "tensor", losses[0], losses[-1])
    return InversionResult(ws=ws, image=image, losses=losses, terms=curves, noise=noise, class_index=class_index,
                           mode=mode)


class _BudgetSpent(Exception):
    pass


def _lbfgs(w: torch.Tensor, loss_of: Callable[[], tuple[torch.Tensor, dict[str, torch.Tensor]]], *, num_steps: int,
           history: int, record: Callable[[torch.Tensor, dict[str, torch.Tensor]], None]) -> None:
    """L-BFGS on ``w`` (in place) for exactly ``num_steps`` loss-and-gradient evaluations, line-search ones
    included (torch's own ``max_eval`` can be overrun by a line search); ``w`` ends at the best point
    evaluated, so a search cut off by the budget never leaves it worse than where it was."""
    if not num_steps:
        return
    opt = torch.optim.LBFGS([w], lr=1.0, max_iter=num_steps, max_eval=num_steps, history_size=history,
                            tolerance_grad=0.0, tolerance_change=0.0, line_search_fn="strong_wolfe")
    best = {"loss": math.inf, "w": w.detach().clone()}
    evaluations = 0

    def closure() -> torch.Tensor:
        nonlocal evaluations
        if evaluations == num_steps:
            raise _BudgetSpent
        evaluations += 1
        opt.zero_grad(set_to_none=True)
        loss, terms = loss_of()
        loss.backward()
        record(loss, terms)
        if float(loss.detach()) < best["loss"]:
            best.update(loss=float(loss.detach()), w=w.detach().clone())
        return loss

    try:
        while evaluations < num_steps:
            opt.step(closure)
    except _BudgetSpent:
        pass
    with torch.no_grad():
        w.copy_(best["w"])


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PSNR in dB between ``[B,3,H,W]`` images in ``[-1,1]`` (peak-to-peak 2) -> ``[B]``."""
    mse = (a.float() - b.float()).square().flatten(1).mean(1).clamp_min(1e-12)
    return 10 * torch.log10(4.0 / mse)
