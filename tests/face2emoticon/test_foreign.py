"""Foreign formats: rosinality .pt import equality and the restricted NVlabs .pkl reader."""
import collections
import math
import os
import pickle
import sys
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from face2emoticon.config import DiscriminatorConfig, toy_config
from face2emoticon.foreign import (
    load_any_generator,
    load_nvlabs_pkl,
    load_rosinality,
    read_pickle,
)
from face2emoticon.networks import Discriminator, Generator
from landmarks.errors import WeightsError

# ---------------------------------------------------------------------------------------------------------------
# A compact re-implementation of rosinality/stylegan2-pytorch model.py's Generator (CPU path), written from its
# published code: same module names (hence the same state-dict keys) and the same forward maths.


def _upfirdn2d(x, k, up=1, down=1, pad=(0, 0)):
    b, c, h, w = x.shape
    x = x.reshape(-1, h, w, 1).view(-1, h, 1, w, 1, 1)
    x = F.pad(x, [0, 0, 0, up - 1, 0, 0, 0, up - 1]).view(-1, h * up, w * up, 1)
    x = F.pad(x, [0, 0, pad[0], pad[1], pad[0], pad[1]])
    x = x.permute(0, 3, 1, 2).reshape(-1, 1, h * up + sum(pad), w * up + sum(pad))
    x = F.conv2d(x, torch.flip(k, [0, 1]).view(1, 1, *k.shape))
    x = x.reshape(-1, 1, x.shape[2], x.shape[3]).permute(0, 2, 3, 1)[:, ::down, ::down, :]
    return x.reshape(b, c, x.shape[1], x.shape[2])


def _make_kernel(k):
    k = torch.tensor(k, dtype=torch.float32)
    k = k[None, :] * k[:, None]
    return k / k.sum()


class EqualLinear(nn.Module):
    def __init__(self, i, o, bias_init=0.0, lr_mul=1.0, activation=None):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(o, i).div_(lr_mul))
        self.bias = nn.Parameter(torch.zeros(o).fill_(bias_init))
        self.scale, self.lr_mul, self.activation = lr_mul / math.sqrt(i), lr_mul, activation

    def forward(self, x):
        if self.activation:
            return F.leaky_relu(F.linear(x, self.weight * self.scale) + self.bias * self.lr_mul, 0.2) * math.sqrt(2)
        return F.linear(x, self.weight * self.scale, bias=self.bias * self.lr_mul)


class Blur(nn.Module):
    def __init__(self, pad, factor=1):
        super().__init__()
        self.register_buffer("kernel", _make_kernel([1, 3, 3, 1]) * factor**2)
        self.pad = pad

    def forward(self, x):
        return _upfirdn2d(x, self.kernel, pad=self.pad)


class ModulatedConv2d(nn.Module):
    def __init__(self, i, o, k, style_dim, demodulate=True, upsample=False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, o, i, k, k))
        self.modulation = EqualLinear(style_dim, i, bias_init=1)
        self.scale, self.padding, self.demodulate, self.upsample = 1 / math.sqrt(i * k * k), k // 2, demodulate, upsample
        if upsample:
            p = (4 - 2) - (k - 1)
            self.blur = Blur(((p + 1) // 2 + 1, p // 2 + 1), factor=2)

    def forward(self, x, style):
        b, i, h, w = x.shape
        o, k = self.weight.shape[1], self.weight.shape[-1]
        style = self.modulation(style).view(b, 1, i, 1, 1)
        weight = self.scale * self.weight * style
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8).view(b, o, 1, 1, 1)
        if self.upsample:
            weight = weight.transpose(1, 2).reshape(b * i, o, k, k)
            out = F.conv_transpose2d(x.view(1, b * i, h, w), weight, padding=0, stride=2, groups=b)
            return self.blur(out.view(b, o, out.shape[2], out.shape[3]))
        out = F.conv2d(x.view(1, b * i, h, w), weight.view(b * o, i, k, k), padding=self.padding, groups=b)
        return out.view(b, o, h, w)


class NoiseInjection(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x, noise):
        return x + self.weight * noise


class FusedLeakyReLU(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(c))

    def forward(self, x):
        return F.leaky_relu(x + self.bias.view(1, -1, 1, 1), 0.2) * math.sqrt(2)


class StyledConv(nn.Module):
    def __init__(self, i, o, k, style_dim, upsample=False):
        super().__init__()
        self.conv = ModulatedConv2d(i, o, k, style_dim, upsample=upsample)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(o)

    def forward(self, x, style, noise):
        return self.activate(self.noise(self.conv(x, style), noise))


class ToRGB(nn.Module):
    def __init__(self, i, style_dim, upsample=True):
        super().__init__()
        if upsample:
            self.upsample = Blur((2, 1), factor=2)  # kernel buffer as in rosinality's Upsample
        self.conv = ModulatedConv2d(i, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x, style, skip=None):
        out = self.conv(x, style) + self.bias
        if skip is not None:
            out = out + _upfirdn2d(skip, self.upsample.kernel, up=2, pad=(2, 1))
        return out


class ConstantInput(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, c, 4, 4))


class PixelNorm(nn.Module):
    def forward(self, x):
        return x * torch.rsqrt(torch.mean(x**2, dim=1, keepdim=True) + 1e-8)


class RosinalityGenerator(nn.Module):
    def __init__(self, size, style_dim, n_mlp, channel_multiplier=2, cap=512):
        super().__init__()
        self.style = nn.Sequential(PixelNorm(), *[EqualLinear(style_dim, style_dim, lr_mul=0.01, activation="fused_lrelu")
                                                  for _ in range(n_mlp)])
        ch = {4: cap, 8: cap, 16: cap, 32: cap, 64: min(cap, 256 * channel_multiplier)}
        self.input = ConstantInput(ch[4])
        self.conv1 = StyledConv(ch[4], ch[4], 3, style_dim)
        self.to_rgb1 = ToRGB(ch[4], style_dim, upsample=False)
        self.log_size = int(math.log2(size))
        self.num_layers = (self.log_size - 2) * 2 + 1
        self.convs, self.to_rgbs, self.noises = nn.ModuleList(), nn.ModuleList(), nn.Module()
        for layer_idx in range(self.num_layers):
            r = (layer_idx + 5) // 2
            self.noises.register_buffer(f"noise_{layer_idx}", torch.randn(1, 1, 2**r, 2**r))
        cin = ch[4]
        for i in range(3, self.log_size + 1):
            cout = ch[2**i]
            self.convs.append(StyledConv(cin, cout, 3, style_dim, upsample=True))
            self.convs.append(StyledConv(cout, cout, 3, style_dim))
            self.to_rgbs.append(ToRGB(cout, style_dim))
            cin = cout
        self.n_latent = self.log_size * 2 - 2

    def forward(self, z):
        latent = self.style(z).unsqueeze(1).repeat(1, self.n_latent, 1)
        noise = [getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)]
        out = self.input.input.repeat(z.shape[0], 1, 1, 1)
        out = self.conv1(out, latent[:, 0], noise[0])
        skip = self.to_rgb1(out, latent[:, 1])
        i = 1
        for c1, c2, n1, n2, rgb in zip(self.convs[::2], self.convs[1::2], noise[1::2], noise[2::2], self.to_rgbs):
            out = c1(out, latent[:, i], n1)
            out = c2(out, latent[:, i + 1], n2)
            skip = rgb(out, latent[:, i + 2], skip)
            i += 2
        return skip


def _randomise(module, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith(("noise.weight", "activate.bias", "to_rgb1.bias")) or ".bias" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3 + (1.0 if "modulation" in name else 0.0))


def test_rosinality_import_matches_reference_forward(tmp_path):
    torch.manual_seed(0)
    ref = RosinalityGenerator(16, 32, 2, cap=32).eval()
    _randomise(ref, 1)
    sd = ref.state_dict()
    assert {"style.1.weight", "input.input", "conv1.conv.modulation.weight", "conv1.noise.weight",
            "conv1.activate.bias", "to_rgb1.bias", "convs.0.conv.blur.kernel", "to_rgbs.0.upsample.kernel",
            "noises.noise_4"} <= set(sd)
    torch.save({"g_ema": sd, "args": __import__("argparse").Namespace(size=16)}, tmp_path / "toon.pt")
    G = load_rosinality(tmp_path / "toon.pt")
    assert G.cfg.resolution == 16 and G.cfg.c_dim == 0 and G.cfg.channels(16) == 32 and G.cfg.mapping_layers == 2
    z = torch.randn(3, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = ref(z)
        got = G(z, noise_mode="const")
    assert got.shape == expected.shape == (3, 3, 16, 16)
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-4), (got - expected).abs().max()
    assert torch.allclose(load_any_generator(tmp_path / "toon.pt")(z), got, atol=1e-6)


def test_rosinality_refuses_code_and_wrong_layout(tmp_path):
    torch.save({"g_ema": {"foo": torch.zeros(1)}}, tmp_path / "bad.pt")
    with pytest.raises(WeightsError, match="rosinality"):
        load_rosinality(tmp_path / "bad.pt")
    torch.save({"g_ema": collections.Counter(a=1), "x": _Evil()}, tmp_path / "evil.pt")
    with pytest.raises(WeightsError):
        load_rosinality(tmp_path / "evil.pt")


# ---------------------------------------------------------------------------------------------------------------
# NVlabs pickles: built in the test with the same reduce protocol as torch_utils.persistence.

class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def _fake_nvlabs_modules(monkeypatch):
    persistence = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):  # pragma: no cover - only referenced by pickle
        raise AssertionError

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    util = types.ModuleType("dnnlib.util")

    class EasyDict(dict):
        pass

    EasyDict.__module__ = "dnnlib.util"
    EasyDict.__qualname__ = "EasyDict"
    util.EasyDict = EasyDict
    for name, mod in {"torch_utils": types.ModuleType("torch_utils"), "torch_utils.persistence": persistence,
                      "dnnlib": types.ModuleType("dnnlib"), "dnnlib.util": util}.items():
        monkeypatch.setitem(sys.modules, name, mod)
    return _reconstruct_persistent_obj, EasyDict


class _Persistent:
    def __init__(self, fn, meta):
        self.fn, self.meta = fn, meta

    def __reduce__(self):
        return (self.fn, (self.meta,))


def _as_persistent(module, fn, extra=None, src="raise SystemExit('executed pickled source')"):
    state = {"training": False, "_parameters": collections.OrderedDict(module._parameters),
             "_buffers": collections.OrderedDict(module._buffers), "_non_persistent_buffers_set": set(),
             "_modules": collections.OrderedDict((k, _as_persistent(m, fn, src=src)) for k, m in module._modules.items())}
    if hasattr(module, "lr_mul"):
        state["bias_gain"] = module.lr_mul
    state.update(extra or {})
    meta = {"type": "class", "version": 4, "module_src": src, "module_name": "_imported_module_1",
            "class_name": type(module).__name__, "state": state}
    return _Persistent(fn, meta)


def test_nvlabs_pickle_converts_without_running_code(tmp_path, monkeypatch):
    fn, EasyDict = _fake_nvlabs_modules(monkeypatch)
    cfg = toy_config(class_names=("c0", "c1"))
    G = Generator(cfg, seed=5).eval()
    D = Discriminator(DiscriminatorConfig.matching(cfg.replace(class_names=())), seed=6)
    marker = tmp_path / "ran"
    src = f"open({str(marker)!r}, 'w').write('x')"
    attrs = {"z_dim": 16, "c_dim": 2, "w_dim": 16, "img_resolution": 16, "img_channels": 3,
             "_init_kwargs": EasyDict(z_dim=16, c_dim=2)}
    snapshot = {"G": _as_persistent(G, fn, attrs, src), "G_ema": _as_persistent(G, fn, attrs, src),
                "D": _as_persistent(D, fn, {"img_resolution": 16}, src), "training_set_kwargs": EasyDict(res=16)}
    path = tmp_path / "network-snapshot.pkl"
    path.write_bytes(pickle.dumps(snapshot, protocol=4))
    G2, D2 = load_nvlabs_pkl(path)
    assert not marker.exists()
    assert G2.cfg.c_dim == 2 and G2.cfg.resolution == 16
    z, c = torch.randn(2, 16, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1])
    assert torch.equal(G2(z, c), G(z, c))
    assert D2 is not None and torch.equal(D2.b4.out.weight, D.b4.out.weight)


# ---------------------------------------------------------------------------------------------------------------
# A compact re-implementation of NVlabs stylegan2-ada-pytorch training/networks.py's Generator (skip architecture,
# float32, the grouped-convolution modulation it runs at inference), written from its published code: the same
# class and attribute names (hence the same pickled layout) and the same maths, including its own upfirdn2d,
# conv2d_resample padding arithmetic and bias_act.


def _nv_setup_filter(taps):
    f = torch.as_tensor(taps, dtype=torch.float32)
    f = f.ger(f)  # fewer than 8 taps: not separable
    return f / f.sum()


def _nv_upfirdn2d(x, f, up=1, padding=(0, 0, 0, 0), gain=1):
    b, c, h, w = x.shape
    px0, px1, py0, py1 = padding
    x = F.pad(x.reshape(b, c, h, 1, w, 1), [0, up - 1, 0, 0, 0, up - 1]).reshape(b, c, h * up, w * up)
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]
    f = (f * gain ** (f.ndim / 2)).flip([0, 1])
    return F.conv2d(x, f[None, None].repeat(c, 1, 1, 1), groups=c)


def _nv_conv2d_resample(x, w, f=None, up=1, padding=0, groups=1, flip_weight=True):
    out_channels, in_per_group, kh, kw = w.shape
    px0 = px1 = py0 = py1 = padding
    if up == 1:
        return F.conv2d(x, w if flip_weight else w.flip([2, 3]), padding=[py0, px0], groups=groups)
    fh, fw = f.shape
    px0, px1 = px0 + (fw + up - 1) // 2 - (kw - 1), px1 + (fw - up) // 2 - (kw - up)
    py0, py1 = py0 + (fh + up - 1) // 2 - (kh - 1), py1 + (fh - up) // 2 - (kh - up)
    w = w.reshape(groups, out_channels // groups, in_per_group, kh, kw).transpose(1, 2)
    w = w.reshape(groups * in_per_group, out_channels // groups, kh, kw)
    pxt, pyt = max(min(-px0, -px1), 0), max(min(-py0, -py1), 0)
    x = F.conv_transpose2d(x, w.flip([2, 3]) if flip_weight else w, stride=up, padding=[pyt, pxt], groups=groups)
    return _nv_upfirdn2d(x, f, padding=(px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt), gain=up**2)


def _nv_modulated_conv2d(x, weight, styles, noise=None, up=1, padding=0, resample_filter=None, demodulate=True,
                         flip_weight=True):
    b = x.shape[0]
    _, cin, kh, kw = weight.shape
    w = weight.unsqueeze(0) * styles.reshape(b, 1, -1, 1, 1)
    if demodulate:
        w = w * (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt().reshape(b, -1, 1, 1, 1)
    x = _nv_conv2d_resample(x.reshape(1, -1, *x.shape[2:]), w.reshape(-1, cin, kh, kw), f=resample_filter, up=up,
                            padding=padding, groups=b, flip_weight=flip_weight)
    x = x.reshape(b, -1, *x.shape[2:])
    return x + noise if noise is not None else x


def _nv_bias_act(x, b, act="linear", gain=None, clamp=None):
    x = x + b.reshape(1, -1, *[1] * (x.ndim - 2))
    def_gain = 1.0
    if act == "lrelu":
        x, def_gain = F.leaky_relu(x, 0.2), np.sqrt(2)
    gain = def_gain if gain is None else gain
    x = x * gain if gain != 1 else x
    return x.clamp(-clamp, clamp) if clamp is not None and clamp >= 0 else x


def _nv_normalize_2nd_moment(x):
    return x * (x.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()


class NvFullyConnectedLayer(nn.Module):
    def __init__(self, in_features, out_features, activation="linear", lr_multiplier=1, bias_init=0):
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], np.float32(bias_init)))
        self.weight_gain = lr_multiplier / np.sqrt(in_features)  # numpy scalars, as in real pickles
        self.bias_gain = lr_multiplier

    def forward(self, x):
        w = self.weight * self.weight_gain
        b = self.bias * self.bias_gain if self.bias_gain != 1 else self.bias
        if self.activation == "linear":
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return _nv_bias_act(x.matmul(w.t()), b, act=self.activation)


class NvMappingNetwork(nn.Module):
    def __init__(self, z_dim, c_dim, w_dim, num_ws, num_layers=8, embed_features=None, lr_multiplier=0.01,
                 w_avg_beta=0.995):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.num_layers, self.w_avg_beta = num_layers, w_avg_beta
        embed_features = (w_dim if embed_features is None else embed_features) if c_dim else 0
        features = [z_dim + embed_features] + [w_dim] * num_layers
        if c_dim:
            self.embed = NvFullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            setattr(self, f"fc{idx}", NvFullyConnectedLayer(features[idx], features[idx + 1], activation="lrelu",
                                                            lr_multiplier=lr_multiplier))
        self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(self, z, c):  # c: one-hot [B,c_dim]
        x = _nv_normalize_2nd_moment(z)
        if self.c_dim:
            x = torch.cat([x, _nv_normalize_2nd_moment(self.embed(c))], dim=1)
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        return x.unsqueeze(1).repeat([1, self.num_ws, 1])


class NvSynthesisLayer(nn.Module):
    def __init__(self, in_channels, out_channels, w_dim, resolution, kernel_size=3, up=1, conv_clamp=None):
        super().__init__()
        self.resolution, self.up, self.use_noise, self.activation = resolution, up, True, "lrelu"
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", _nv_setup_filter([1, 3, 3, 1]))
        self.padding = kernel_size // 2
        self.act_gain = np.sqrt(2)
        self.affine = NvFullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.register_buffer("noise_const", torch.randn([resolution, resolution]))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x, w):  # noise_mode="const"
        x = _nv_modulated_conv2d(x, self.weight, self.affine(w), noise=self.noise_const * self.noise_strength,
                                 up=self.up, padding=self.padding, resample_filter=self.resample_filter,
                                 flip_weight=self.up == 1)
        return _nv_bias_act(x, self.bias, act=self.activation, gain=self.act_gain, clamp=self.conv_clamp)


class NvToRGBLayer(nn.Module):
    def __init__(self, in_channels, out_channels, w_dim, kernel_size=1, conv_clamp=None):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = NvFullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / np.sqrt(in_channels * kernel_size**2)

    def forward(self, x, w):
        x = _nv_modulated_conv2d(x, self.weight, self.affine(w) * self.weight_gain, demodulate=False)
        return _nv_bias_act(x, self.bias, clamp=self.conv_clamp)


class NvSynthesisBlock(nn.Module):
    def __init__(self, in_channels, out_channels, w_dim, resolution, img_channels, is_last, conv_clamp=None):
        super().__init__()
        self.in_channels, self.w_dim, self.resolution, self.img_channels = in_channels, w_dim, resolution, img_channels
        self.is_last, self.architecture, self.use_fp16, self.channels_last = is_last, "skip", False, False
        self.register_buffer("resample_filter", _nv_setup_filter([1, 3, 3, 1]))
        self.num_conv = self.num_torgb = 0
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = NvSynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2, conv_clamp=conv_clamp)
            self.num_conv += 1
        self.conv1 = NvSynthesisLayer(out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp)
        self.torgb = NvToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
        self.num_conv, self.num_torgb = self.num_conv + 1, 1

    def forward(self, x, img, ws):
        w_iter = iter(ws.unbind(dim=1))
        if self.in_channels == 0:
            x = self.const.unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
        else:
            x = self.conv0(x, next(w_iter))
        x = self.conv1(x, next(w_iter))
        if img is not None:  # upfirdn2d.upsample2d: padding from the filter size, gain up**2
            fw = self.resample_filter.shape[-1]
            pad = ((fw + 1) // 2, (fw - 2) // 2) * 2
            img = _nv_upfirdn2d(img, self.resample_filter, up=2, padding=(pad[0], pad[1], pad[0], pad[1]), gain=4)
        y = self.torgb(x, next(w_iter))
        return x, img + y if img is not None else y


class NvSynthesisNetwork(nn.Module):
    def __init__(self, w_dim, img_resolution, img_channels, channel_base=32768, channel_max=512, conv_clamp=None):
        super().__init__()
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.img_resolution_log2 = int(np.log2(img_resolution))
        self.block_resolutions = [2**i for i in range(2, self.img_resolution_log2 + 1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        self.num_ws = 0
        for res in self.block_resolutions:
            block = NvSynthesisBlock(channels[res // 2] if res > 4 else 0, channels[res], w_dim, res, img_channels,
                                     is_last=res == img_resolution, conv_clamp=conv_clamp)
            self.num_ws += block.num_conv + (block.num_torgb if block.is_last else 0)
            setattr(self, f"b{res}", block)

    def forward(self, ws):
        x = img = None
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            x, img = block(x, img, ws.narrow(1, w_idx, block.num_conv + block.num_torgb))
            w_idx += block.num_conv
        return img


class NvGenerator(nn.Module):
    def __init__(self, z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs, synthesis_kwargs):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.synthesis = NvSynthesisNetwork(w_dim, img_resolution, img_channels, **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = NvMappingNetwork(z_dim, c_dim, w_dim, self.num_ws, **mapping_kwargs)

    def forward(self, z, c):
        return self.synthesis(self.mapping(z, c))


def _as_snapshot_module(module, fn, init_kwargs=None):
    """What ``torch_utils.persistence`` pickles: the class name, its source and the whole instance ``__dict__``."""
    state = dict(module.__dict__, _init_args=(), _init_kwargs=init_kwargs or {})
    state["_modules"] = collections.OrderedDict((k, _as_snapshot_module(m, fn)) for k, m in module._modules.items())
    meta = {"type": "class", "version": 6, "module_src": "raise SystemExit('executed pickled source')",
            "class_name": type(module).__name__.removeprefix("Nv"), "state": state}
    return _Persistent(fn, meta)


@pytest.mark.parametrize("conv_clamp", [None, 0.5])
def test_nvlabs_pickle_matches_the_nvlabs_forward(tmp_path, monkeypatch, conv_clamp):
    fn, EasyDict = _fake_nvlabs_modules(monkeypatch)
    kwargs = {"z_dim": 12, "c_dim": 3, "w_dim": 16, "img_resolution": 16, "img_channels": 3,
              "mapping_kwargs": EasyDict(num_layers=2, embed_features=8),
              "synthesis_kwargs": EasyDict(channel_base=128, channel_max=16, conv_clamp=conv_clamp)}
    torch.manual_seed(0)
    ref = NvGenerator(**kwargs).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # move biases, noise strengths and w_avg off their zero initialisation
        for name, p in [*ref.named_parameters(), ("mapping.w_avg", ref.mapping.w_avg)]:
            if name.endswith(("bias", "noise_strength", "w_avg")):
                p.add_(torch.randn(p.shape, generator=g) * 0.3)
    sd = ref.state_dict()
    assert {"synthesis.b4.const", "synthesis.b4.conv1.affine.weight", "synthesis.b8.conv0.noise_const",
            "synthesis.b8.conv0.resample_filter", "synthesis.b16.torgb.weight", "mapping.embed.bias",
            "mapping.w_avg"} <= set(sd)
    assert ref.num_ws == 6 and sd["synthesis.b16.conv1.weight"].shape == (8, 8, 3, 3)

    def write(gen):
        path = tmp_path / "network-snapshot-000200.pkl"
        snap = {"training_set_kwargs": {"resolution": 16, "use_labels": True}, "G": _as_snapshot_module(gen, fn, kwargs),
                "D": None, "G_ema": _as_snapshot_module(gen, fn, kwargs), "augment_pipe": None}
        path.write_bytes(pickle.dumps(snap))
        return path

    G = load_any_generator(write(ref))
    assert (G.cfg.z_dim, G.cfg.c_dim, G.cfg.w_dim, G.cfg.embed_dim, G.cfg.mapping_layers) == (12, 3, 16, 8, 2)
    assert G.cfg.mapping_lr_mul == pytest.approx(0.01) and G.cfg.conv_clamp == conv_clamp
    assert [G.cfg.channels(r) for r in (4, 8, 16)] == [16, 16, 8]
    z = torch.randn(4, 12, generator=torch.Generator().manual_seed(2))
    c = torch.tensor([0, 2, 1, 2])
    with torch.no_grad():
        ws_ref = ref.mapping(z, F.one_hot(c, 3).float())
        expected = ref.synthesis(ws_ref)
        ws = G.mapping(z, c)
        got = G.synthesis(ws, noise_mode="const")
    assert torch.allclose(ws, ws_ref, atol=1e-5, rtol=1e-5), (ws - ws_ref).abs().max()
    assert torch.equal(G.mapping.w_avg, ref.mapping.w_avg)
    assert got.shape == expected.shape == (4, 3, 16, 16)
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-4), (got - expected).abs().max()
    # a resampling filter other than [1,3,3,1] is refused rather than silently replaced
    ref.synthesis.b8.conv0.resample_filter = _nv_setup_filter([1, 2, 1])
    with pytest.raises(WeightsError, match="filter"):
        load_any_generator(write(ref))


def test_pickle_reader_refuses_malicious_globals(tmp_path, monkeypatch):
    for payload in (_Evil(), {"G_ema": [_Evil()]}, {"x": collections.Counter(a=1)}, {"f": eval}):
        data = pickle.dumps(payload)
        with pytest.raises(WeightsError, match="refusing to load"):
            read_pickle(data)
    (tmp_path / "bad.pkl").write_bytes(pickle.dumps({"G_ema": _Evil()}))
    with pytest.raises(WeightsError, match="refusing"):
        load_nvlabs_pkl(tmp_path / "bad.pkl")
    with pytest.raises(WeightsError, match="corrupt"):
        read_pickle(pickle.dumps({"a": torch.ones(3)})[:-7])
    tf_like = b"\x80\x02cdnnlib.tflib.network\nNetwork\nq\x00)\x81q\x01."
    with pytest.raises(WeightsError, match="TensorFlow"):
        read_pickle(tf_like)
    # plain tensors and containers are fine
    assert torch.equal(read_pickle(pickle.dumps({"a": [torch.arange(3)]}))["a"][0], torch.arange(3))
