"""Foreign generator formats, read without running any code from the file.

* rosinality/stylegan2-pytorch ``.pt`` (``{"g_ema": state_dict, ...}``), the de-facto PyTorch format of FFHQ and
  toonified StyleGAN2 models: loaded with ``torch.load(weights_only=True)`` and mapped key by key onto our
  generator, whose maths mirrors theirs (same up-sampling, modulation, noise and activation), so the same z and
  noise give the same image.
* NVlabs stylegan2-ada-pytorch / stylegan3 ``.pkl``: a restricted unpickler rebuilds tensors and plain containers
  only. The pickled classes (``torch_utils.persistence`` objects that carry their own source code) are never
  imported or executed: each becomes a :class:`PickledModule` holding its attribute dict, from which the state
  dict is collected by name. Any other global (``os.system``, ``builtins.eval``, arbitrary classes...) is
  refused with :class:`~landmarks.errors.WeightsError`. StyleGAN2-architecture generators convert exactly
  (parameter names already match ours); StyleGAN3 (``synthesis.L0_36_512...``) ones are read but refused for
  conversion with a clear message.
"""
from __future__ import annotations

import argparse
import collections
import io
import logging
import math
import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from face2emoticon import ops
from face2emoticon.config import DiscriminatorConfig, GeneratorConfig
from face2emoticon.networks import Discriminator, Generator
from landmarks.errors import WeightsError

log = logging.getLogger(__name__)


# -------------------------------------------------------------------------------------------------- rosinality

def _channel_rule(channels: dict[int, int]) -> tuple[int, int]:
    """(channel_base, channel_max) reproducing ``channels`` with ``min(base // res, max)``."""
    cmax = max(channels.values())
    for base in sorted({c * r for r, c in channels.items()} | {cmax * 32, cmax * 64}):
        if all(min(base // r, cmax) == c for r, c in channels.items()):
            return base, cmax
    raise WeightsError(f"channel counts {channels} follow no min(base/res, max) rule; this layout is not supported")


def rosinality_to_state_dict(sd: dict[str, torch.Tensor], *, mapping_lr_mul: float = 0.01
                             ) -> tuple[GeneratorConfig, dict[str, torch.Tensor]]:
    """Map a rosinality ``g_ema`` state dict onto our names; returns (config, state dict without ``w_avg``)."""
    try:
        style_ids = sorted(int(m.group(1)) for k in sd if (m := re.fullmatch(r"style\.(\d+)\.weight", k)))
        w_dim = sd[f"style.{style_ids[0]}.weight"].shape[0]
        n_rgb = len({k.split(".")[1] for k in sd if k.startswith("to_rgbs.")})
        resolution = 2 ** (n_rgb + 2)
        channels = {4: sd["input.input"].shape[1]}
        for i in range(n_rgb):
            channels[2 ** (i + 3)] = sd[f"convs.{2 * i}.conv.weight"].shape[1]
    except (KeyError, IndexError) as exc:
        raise WeightsError(f"not a rosinality StyleGAN2 generator state dict (missing {exc}); pass the 'g_ema' "
                           "entry of a stylegan2-pytorch checkpoint") from exc
    base, cmax = _channel_rule(channels)
    blur = sd.get("convs.0.conv.blur.kernel")
    if blur is not None and not torch.allclose(blur / blur.sum(), ops.fir_kernel((1, 3, 3, 1)), atol=1e-6):
        raise WeightsError("this checkpoint uses a blur kernel other than [1,3,3,1], which is not supported")
    cfg = GeneratorConfig(resolution=resolution, z_dim=w_dim, w_dim=w_dim, mapping_layers=len(style_ids),
                          mapping_lr_mul=mapping_lr_mul, channel_base=base, channel_max=cmax, class_names=())
    out: dict[str, torch.Tensor] = {}
    for i, sid in enumerate(style_ids):
        out[f"mapping.fc{i}.weight"] = sd[f"style.{sid}.weight"]
        out[f"mapping.fc{i}.bias"] = sd[f"style.{sid}.bias"]
    out["synthesis.b4.const"] = sd["input.input"][0]

    def layer(src: str, dst: str, noise_idx: int) -> None:
        out[f"{dst}.weight"] = sd[f"{src}.conv.weight"][0]
        out[f"{dst}.affine.weight"] = sd[f"{src}.conv.modulation.weight"]
        out[f"{dst}.affine.bias"] = sd[f"{src}.conv.modulation.bias"]
        out[f"{dst}.bias"] = sd[f"{src}.activate.bias"]
        out[f"{dst}.noise_strength"] = sd[f"{src}.noise.weight"].reshape([])
        out[f"{dst}.noise_const"] = sd[f"noises.noise_{noise_idx}"][0, 0]

    def torgb(src: str, dst: str) -> None:
        out[f"{dst}.weight"] = sd[f"{src}.conv.weight"][0]
        out[f"{dst}.affine.weight"] = sd[f"{src}.conv.modulation.weight"]
        out[f"{dst}.affine.bias"] = sd[f"{src}.conv.modulation.bias"]
        out[f"{dst}.bias"] = sd[f"{src}.bias"].reshape(3)

    layer("conv1", "synthesis.b4.conv1", 0)
    torgb("to_rgb1", "synthesis.b4.torgb")
    for i in range(n_rgb):
        res = 2 ** (i + 3)
        layer(f"convs.{2 * i}", f"synthesis.b{res}.conv0", 2 * i + 1)
        layer(f"convs.{2 * i + 1}", f"synthesis.b{res}.conv1", 2 * i + 2)
        torgb(f"to_rgbs.{i}", f"synthesis.b{res}.torgb")
    return cfg, {k: v.float().contiguous() for k, v in out.items()}


def _finish(cfg: GeneratorConfig, sd: dict[str, torch.Tensor], *, device, dtype) -> Generator:
    from face2emoticon.checkpoint import load_state_strict

    G = Generator(cfg, seed=None)
    if "mapping.w_avg" not in sd:
        sd = {**sd, "mapping.w_avg": torch.zeros(cfg.w_dim)}
        load_state_strict(G, sd, what="the converted generator")
        if not cfg.c_dim:
            G.mapping.w_avg.copy_(G.mean_w(None)[0])
    else:
        load_state_strict(G, sd, what="the converted generator")
    return G.to(device=device, dtype=dtype).eval().requires_grad_(False)


def load_rosinality(path: str | os.PathLike, *, key: str = "g_ema", device="cpu", dtype=torch.float32) -> Generator:
    """Our generator from a rosinality ``.pt`` (``torch.load(weights_only=True)``; ``key`` picks g_ema or g)."""
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise WeightsError(f"'{path}' holds more than tensors and plain data, so it is not loaded ({exc}); convert it "
                           "to a plain state dict first") from exc
    except (OSError, RuntimeError) as exc:
        raise WeightsError(f"cannot read '{path}' as a PyTorch checkpoint ({exc})") from exc
    sd = ckpt.get(key, ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(sd, dict):
        raise WeightsError(f"'{path}' has no '{key}' state dict; keys: {list(ckpt)[:10] if isinstance(ckpt, dict) else type(ckpt)}")
    cfg, out = rosinality_to_state_dict(sd)
    return _finish(cfg, out, device=device, dtype=dtype)


# ------------------------------------------------------------------------------------------- restricted pickle

class PickledModule:
    """A pickled NVlabs module, kept as data: ``class_name``, ``module_name`` and its attribute ``state``."""

    def __init__(self, class_name: str, module_name: str, state: dict[str, Any]):
        self.class_name, self.module_name, self.state = class_name, module_name, state

    def __repr__(self) -> str:
        return f"PickledModule({self.module_name}.{self.class_name})"

    def state_dict(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Parameters and persistent buffers by dotted name, like ``nn.Module.state_dict``."""
        out: dict[str, torch.Tensor] = {}
        skip = set(self.state.get("_non_persistent_buffers_set") or ())
        for k, v in (self.state.get("_parameters") or {}).items():
            if v is not None:
                out[prefix + k] = v.detach()
        for k, v in (self.state.get("_buffers") or {}).items():
            if v is not None and k not in skip:
                out[prefix + k] = v.detach()
        for k, m in (self.state.get("_modules") or {}).items():
            if isinstance(m, PickledModule):
                out.update(m.state_dict(prefix + k + "."))
        return out

    def init_kwargs(self) -> dict[str, Any]:
        return dict(self.state.get("_init_kwargs") or {})


class _EasyDict(dict):
    """Stands in for ``dnnlib.util.EasyDict`` (a plain dict)."""


def _reconstruct_persistent_obj(meta: dict[str, Any]) -> PickledModule:
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise WeightsError("unexpected persistent object in the pickle; only pickled network classes are read")
    # meta["module_src"] is the class's source code: deliberately never compiled or run.
    return PickledModule(str(meta.get("class_name")), str(meta.get("module_name", "")), dict(meta.get("state") or {}))


def _load_storage_from_bytes(b: bytes):
    return torch.load(io.BytesIO(b), weights_only=True)


def _plain_codecs_encode(obj: str, encoding: str = "utf-8") -> bytes:
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8"):
        raise WeightsError("unexpected _codecs.encode call in the pickle")
    return obj.encode(encoding)


_TORCH_DTYPES = {name for name in dir(torch) if isinstance(getattr(torch, name, None), torch.dtype)}


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "dict"): dict,
    ("builtins", "list"): list,
    ("builtins", "tuple"): tuple,
    ("builtins", "slice"): slice,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch", "Size"): torch.Size,
    ("torch.storage", "_load_from_bytes"): _load_storage_from_bytes,
    ("_codecs", "encode"): _plain_codecs_encode,
    ("dnnlib.util", "EasyDict"): _EasyDict,
    ("dnnlib", "EasyDict"): _EasyDict,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds tensors, parameters, numpy arrays and plain containers.

    Persistent NVlabs classes become :class:`PickledModule` data; everything else raises ``WeightsError``.
    """

    def find_class(self, module: str, name: str):
        fn = _ALLOWED_GLOBALS.get((module, name))
        if fn is not None:
            return fn
        if module == "torch" and name in _TORCH_DTYPES:
            return getattr(torch, name)
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name in ("_reconstruct", "scalar"):
            from numpy._core import multiarray  # array rebuilds: data only

            return getattr(multiarray, name)
        if module == "numpy" and name in ("ndarray", "dtype"):
            import numpy as np

            return getattr(np, name)
        if module.startswith("dnnlib.tflib"):
            raise WeightsError("refusing to load: this is a TensorFlow StyleGAN pickle, which would run code to "
                               "load; convert it once with stylegan2-ada-pytorch's legacy.py, then pass the result")
        raise WeightsError(f"refusing to load: the pickle asks for '{module}.{name}', which is not a tensor or "
                           "plain data (an NVlabs network pickle never needs it); the file may be malicious")

    def persistent_load(self, pid):
        raise WeightsError("refusing to load: the pickle uses persistent ids; use torch.load for torch.save files")


def read_pickle(path: str | os.PathLike | bytes) -> Any:
    """Unpickle ``path`` (or raw bytes) with :class:`RestrictedUnpickler`."""
    data = path if isinstance(path, bytes) else Path(path).read_bytes()
    try:
        return RestrictedUnpickler(io.BytesIO(data)).load()
    except WeightsError:
        raise
    except Exception as exc:  # truncated or corrupt streams raise many kinds
        raise WeightsError(f"cannot read the pickle ({type(exc).__name__}: {exc}); the file is corrupt or not an "
                           "NVlabs network pickle") from exc


def _nvlabs_conv_clamp(synthesis: PickledModule) -> float | None:
    """The ``conv_clamp`` NVlabs stores on every SynthesisLayer / ToRGBLayer (its blocks do not keep it)."""
    clamps = set()
    for block in (synthesis.state.get("_modules") or {}).values():
        for layer in (block.state.get("_modules") or {}).values() if isinstance(block, PickledModule) else ():
            if isinstance(layer, PickledModule) and "conv_clamp" in layer.state:
                clamps.add(layer.state["conv_clamp"])
    if len(clamps) > 1:
        raise WeightsError(f"the pickled generator clamps its layers differently ({sorted(map(str, clamps))}); "
                           "emoget's generator takes one conv_clamp for all layers")
    clamp = clamps.pop() if clamps else None
    return None if clamp is None else float(clamp)


def _check_resample_filters(sd: dict[str, torch.Tensor]) -> None:
    expected = ops.fir_kernel((1, 3, 3, 1))
    for k, v in sd.items():
        if k.endswith("resample_filter") and (v.shape != expected.shape or not torch.allclose(v.float(), expected,
                                                                                              atol=1e-6)):
            raise WeightsError(f"'{k}' is not the [1,3,3,1] resampling filter, which is the only one supported")


def nvlabs_generator(G: PickledModule, *, device="cpu", dtype=torch.float32) -> Generator:
    """Convert a pickled NVlabs StyleGAN2(-ADA) generator to ours (names already match)."""
    sd = G.state_dict()
    if any(k.startswith("synthesis.L") for k in sd):
        raise WeightsError("this is a StyleGAN3 generator (alias-free layers), which emoget's StyleGAN2 cannot "
                           "run; use a StyleGAN2 / StyleGAN2-ADA pickle (stylegan3 repo --cfg=stylegan2 works)")
    if "synthesis.b4.const" not in sd:
        raise WeightsError("the pickle's generator is not a StyleGAN2 skip generator (no synthesis.b4.const)")
    st = G.state
    z_dim, c_dim, w_dim = int(st["z_dim"]), int(st["c_dim"]), int(st["w_dim"])
    res = int(st.get("img_resolution"))
    channels = {r: sd[f"synthesis.b{r}.conv1.weight"].shape[0] for r in [2**i for i in range(2, int(math.log2(res)) + 1)]}
    base, cmax = _channel_rule(channels)
    fcs = [k for k in sd if re.fullmatch(r"mapping\.fc\d+\.weight", k)]
    mapping = st["_modules"]["mapping"]
    fc0 = mapping.state["_modules"]["fc0"]
    lr_mul = float(fc0.state.get("bias_gain", 0.01))
    clamp = _nvlabs_conv_clamp(st["_modules"]["synthesis"])
    _check_resample_filters(sd)
    embed = sd["mapping.embed.weight"].shape[0] if c_dim else None
    if st.get("img_channels", 3) != 3:
        raise WeightsError("only RGB (img_channels=3) generators are supported")
    cfg = GeneratorConfig(resolution=res, z_dim=z_dim, w_dim=w_dim, mapping_layers=len(fcs), mapping_lr_mul=lr_mul,
                          channel_base=base, channel_max=cmax, class_names=tuple(f"class{i}" for i in range(c_dim)),
                          embed_dim=embed if embed != w_dim else None, conv_clamp=clamp)
    ours = {k: v.float() for k, v in sd.items() if not k.endswith("resample_filter")}
    return _finish(cfg, ours, device=device, dtype=dtype)


def nvlabs_discriminator(D: PickledModule) -> Discriminator | None:
    """Our discriminator from a pickled NVlabs ``D`` when the layout matches (resnet, unconditional); else None."""
    sd = {k: v.float() for k, v in D.state_dict().items() if not k.endswith("resample_filter")}
    st = D.state
    try:
        res = int(st["img_resolution"])
        channels = {r: sd[f"b{r}.conv0.weight"].shape[0] for r in [2**i for i in range(3, int(math.log2(res)) + 1)]}
        channels[4] = sd["b4.conv.weight"].shape[0]
        base, cmax = _channel_rule(channels)
        cfg = DiscriminatorConfig(resolution=res, channel_base=base, channel_max=cmax)
        Dn = Discriminator(cfg, seed=None)
        from face2emoticon.checkpoint import load_state_strict

        load_state_strict(Dn, sd, what="the pickled discriminator")
        return Dn
    except (KeyError, WeightsError) as exc:
        log.info("pickled discriminator not converted (%s); fine-tuning starts a fresh one", exc)
        return None


def load_nvlabs_pkl(path: str | os.PathLike, *, key: str = "G_ema", device="cpu", dtype=torch.float32
                    ) -> tuple[Generator, Discriminator | None]:
    """(generator, discriminator or None) from an NVlabs network pickle, without executing it."""
    data = read_pickle(path)
    if not isinstance(data, dict) or not isinstance(data.get(key), PickledModule):
        have = list(data) if isinstance(data, dict) else type(data).__name__
        raise WeightsError(f"'{path}' has no '{key}' network (has {have}); pass an NVlabs network-snapshot pickle")
    G = nvlabs_generator(data[key], device=device, dtype=dtype)
    D = nvlabs_discriminator(data["D"]) if isinstance(data.get("D"), PickledModule) else None
    return G, D


def load_foreign(path: str | os.PathLike) -> tuple[Generator, Discriminator | None]:
    """A ``.pt`` (rosinality) or ``.pkl`` (NVlabs) file as (generator, discriminator or None)."""
    p = Path(path)
    if p.suffix == ".pkl":
        return load_nvlabs_pkl(p)
    return load_rosinality(p), None


def load_any_generator(path: str | os.PathLike, *, device="cpu", dtype=torch.float32) -> Generator:
    """A generator from our checkpoint, a training run folder (its ``G_ema``), a rosinality .pt or an NVlabs .pkl."""
    from face2emoticon.checkpoint import load_generator

    p = Path(path)
    if p.is_dir():
        p = p / "G_ema.safetensors"
    if p.suffix in (".pt", ".pth"):
        return load_rosinality(p, device=device, dtype=dtype)
    if p.suffix == ".pkl":
        return load_nvlabs_pkl(p, device=device, dtype=dtype)[0]
    return load_generator(p, device=device, dtype=dtype)
