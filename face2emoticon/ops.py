"""Low-level StyleGAN2 ops in plain PyTorch: FIR up/down-sampling, modulated convolution, bias + activation.

Two implementations of the resampling ops share one set of weights:

* ``impl="fast"`` (default): up-sampling by a depthwise transposed convolution, blurs by a depthwise
  convolution, modulation by scaling activations (one dense convolution for the whole batch) when
  ``fused=False``. These map to single oneDNN kernels on CPU and run under bf16 autocast.
* ``impl="reference"``: rosinality's ``upfirdn2d_native`` (zero insertion, padding and a one-channel
  convolution over ``[B*C,1,H,W]``), kept as the plain, obviously-right baseline for tests and benchmarks.

All images here are ``[B,C,H,W]``; FIR kernels are 1-D, separable and symmetric.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LRELU_GAIN = math.sqrt(2.0)


def fir_kernel(k: tuple[int, ...] | list[int], *, device=None, dtype=torch.float32) -> torch.Tensor:
    """Normalised 2-D FIR ``[K,K]`` (outer product of the 1-D taps, summing to 1)."""
    k1 = torch.as_tensor(k, dtype=torch.float64)
    if not torch.equal(k1, k1.flip(0)):
        raise ValueError(f"FIR kernel must be symmetric, got {list(k)}")
    k2 = torch.outer(k1, k1)
    return (k2 / k2.sum()).to(device=device, dtype=dtype)


def upfirdn2d_native(x: torch.Tensor, kernel: torch.Tensor, *, up: int = 1, down: int = 1,
                     pad: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Reference up-sample / FIR filter / down-sample (rosinality's CPU path), same padding both axes.

    x: ``[B,C,H,W]``; kernel ``[K,K]``; returns ``[B,C,(H*up+p0+p1-K+1)//down,...]``.
    """
    b, c, h, w = x.shape
    out = x.reshape(b * c, 1, h, 1, w, 1)
    out = F.pad(out, [0, up - 1, 0, 0, 0, up - 1])
    out = out.reshape(b * c, 1, h * up, w * up)
    p0, p1 = pad
    out = F.pad(out, [max(p0, 0), max(p1, 0), max(p0, 0), max(p1, 0)])
    out = out[:, :, max(-p0, 0): out.shape[2] - max(-p1, 0), max(-p0, 0): out.shape[3] - max(-p1, 0)]
    wk = torch.flip(kernel, [0, 1]).to(out.dtype).view(1, 1, *kernel.shape)
    out = F.conv2d(out, wk)
    out = out[:, :, ::down, ::down]
    return out.reshape(b, c, out.shape[2], out.shape[3])


def _depthwise(kernel: torch.Tensor, channels: int, dtype: torch.dtype) -> torch.Tensor:
    return kernel.to(dtype).expand(channels, 1, *kernel.shape).contiguous()


def blur(x: torch.Tensor, kernel: torch.Tensor, *, pad: tuple[int, int], gain: float = 1.0,
         impl: str = "fast") -> torch.Tensor:
    """Pad then FIR-filter every channel: ``[B,C,H,W] -> [B,C,H+p0+p1-K+1,...]``."""
    k = kernel * gain
    if impl == "reference":
        return upfirdn2d_native(x, k, pad=pad)
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    return F.conv2d(x, _depthwise(k, x.shape[1], x.dtype), groups=x.shape[1])


def upsample2d(x: torch.Tensor, kernel: torch.Tensor, *, impl: str = "fast") -> torch.Tensor:
    """2x FIR up-sampling ``[B,C,H,W] -> [B,C,2H,2W]`` (zero insertion, pad (K/2, K/2-1), filter, gain 4)."""
    kh = kernel.shape[0]
    p0, p1 = (kh - 2 + 1) // 2 + 1, (kh - 2) // 2
    if impl == "reference":
        return upfirdn2d_native(x, kernel * 4, up=2, pad=(p0, p1))
    # zero insertion + padding + FIR == a transposed depthwise convolution cropped by (K-1-p0).
    crop = kh - 1 - p0
    if crop != kh - 1 - p1 - 1:
        return upfirdn2d_native(x, kernel * 4, up=2, pad=(p0, p1))
    return F.conv_transpose2d(x, _depthwise(kernel * 4, x.shape[1], x.dtype), stride=2, padding=crop,
                              groups=x.shape[1])


def bias_act(x: torch.Tensor, b: torch.Tensor | None, *, act: str = "lrelu", gain: float | None = None,
             clamp: float | None = None) -> torch.Tensor:
    """``act(x + b) * gain`` then clamp; ``act`` is ``"lrelu"`` (slope 0.2, default gain sqrt 2) or ``"linear"``."""
    if b is not None:
        x = x + b.to(x.dtype).view(1, -1, *([1] * (x.ndim - 2)))
    if act == "lrelu":
        x = F.leaky_relu(x, 0.2)
        gain = LRELU_GAIN if gain is None else gain
    elif act != "linear":
        raise ValueError(f"unknown activation {act!r}")
    if gain is not None and gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, *, demodulate: bool = True,
                     up: bool = False, kernel: torch.Tensor | None = None, fused: bool = True,
                     impl: str = "fast") -> torch.Tensor:
    """StyleGAN2 modulated (and demodulated) convolution.

    x: ``[B,I,H,W]``; weight: ``[O,I,k,k]`` (unscaled; ``1/sqrt(I*k*k)`` applied here); styles: ``[B,I]``.
    ``up=True`` is rosinality's 2x transposed convolution followed by a blur (``kernel``, gain 4).
    ``fused=True`` is the grouped-convolution form (one kernel per sample); ``fused=False`` scales
    activations instead and runs one dense convolution (same maths, faster for training).
    Returns ``[B,O,H',W']`` with ``H' = 2H`` when ``up`` else ``H``.
    """
    bsz, cin, h, w = x.shape
    cout, _, kh, kw = weight.shape
    wt = weight.to(x.dtype) * (1.0 / math.sqrt(cin * kh * kw))
    styles = styles.to(x.dtype)
    if fused:
        wb = wt.unsqueeze(0) * styles.view(bsz, 1, cin, 1, 1)
        if demodulate:
            wb = wb * torch.rsqrt(wb.square().sum([2, 3, 4]) + 1e-8).view(bsz, cout, 1, 1, 1)
        xg = x.reshape(1, bsz * cin, h, w)
        if up:
            wg = wb.transpose(1, 2).reshape(bsz * cin, cout, kh, kw)
            out = F.conv_transpose2d(xg, wg, stride=2, groups=bsz)
        else:
            out = F.conv2d(xg, wb.reshape(bsz * cout, cin, kh, kw), padding=kh // 2, groups=bsz)
        out = out.reshape(bsz, cout, out.shape[2], out.shape[3])
    else:
        out = x * styles.view(bsz, cin, 1, 1)
        if up:
            out = F.conv_transpose2d(out, wt.transpose(0, 1), stride=2)
        else:
            out = F.conv2d(out, wt, padding=kh // 2)
        if demodulate:
            dcoefs = torch.rsqrt(styles.square() @ wt.square().sum([2, 3]).t() + 1e-8)  # [B,O]
            out = out * dcoefs.view(bsz, cout, 1, 1)
    if up:
        p = (kernel.shape[0] - 2) - (kh - 1)
        out = blur(out, kernel, pad=((p + 1) // 2 + 1, p // 2 + 1), gain=4.0, impl=impl)
    return out


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """``x / sqrt(mean(x^2))`` along ``dim`` (PixelNorm)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def minibatch_stddev(x: torch.Tensor, *, group_size: int, num_channels: int = 1) -> torch.Tensor:
    """Append the per-group feature standard deviation as ``num_channels`` extra channels.

    The group is the largest divisor of the batch not above ``group_size``.
    """
    n, c, h, w = x.shape
    g = max(d for d in range(1, min(group_size, n) + 1) if n % d == 0)
    f = num_channels
    y = x.reshape(g, -1, f, c // f, h, w).float()
    y = y - y.mean(dim=0)
    y = (y.square().mean(dim=0) + 1e-8).sqrt()
    y = y.mean(dim=[2, 3, 4]).reshape(-1, f, 1, 1).repeat(g, 1, h, w)
    return torch.cat([x, y.to(x.dtype)], dim=1)
