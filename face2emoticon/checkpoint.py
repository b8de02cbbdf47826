"""Checkpoints: tensors in safetensors, configs and bookkeeping in JSON; strict keys; atomic writes.

* Generator: ``x.safetensors`` + ``x.json`` (``{"format": ..., "config": GeneratorConfig}``).
* Discriminator: the same with a :class:`DiscriminatorConfig`.
* Training state (resume): one ``state.safetensors`` holding G, G_ema, D, both optimisers' moments and the
  RNG states, with the JSON bookkeeping (step, options, augment p, optimiser hyper-parameters) in the
  safetensors metadata, so a single ``os.replace`` makes it visible; ``state.json`` beside it is a readable copy.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from face2emoticon.config import DiscriminatorConfig, GeneratorConfig
from face2emoticon.networks import Discriminator, Generator
from landmarks.errors import WeightsError

log = logging.getLogger(__name__)

FORMAT = "emoget-stylegan2/1"
STATE_FORMAT = "emoget-stylegan2-train/1"


def _stem(path: str | os.PathLike) -> Path:
    p = Path(path)
    return p.with_suffix("") if p.suffix in (".safetensors", ".json") else p


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, _default_mode())  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to a temp file in the same folder, fsync, then rename over ``path``."""
    _atomic_write_bytes(Path(path), text.encode())


def _atomic_save_tensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp, metadata=metadata)
        os.chmod(tmp, _default_mode())
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if not path.exists():
        raise WeightsError(f"no checkpoint at '{path}'; check the path (a .safetensors file with its .json beside)")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            return {k: f.get_tensor(k) for k in f.keys()}, meta  # noqa: SIM118 - safe_open is not iterable
    except Exception as exc:
        raise WeightsError(f"'{path}' is not a readable safetensors file ({exc}); re-export or re-download it") \
            from exc


def load_state_strict(module: nn.Module, tensors: dict[str, torch.Tensor], *, what: str) -> None:
    """``module.load_state_dict(tensors, strict=True)`` with an error that names the offending keys."""
    own = module.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    wrong = sorted(k for k in set(own) & set(tensors) if own[k].shape != tensors[k].shape)
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
        if wrong:
            parts.append("shape mismatch " + ", ".join(
                f"{k} {list(tensors[k].shape)} vs {list(own[k].shape)}" for k in wrong[:5]))
        raise WeightsError(f"{what} does not match its config: {'; '.join(parts)}; the files are from different "
                           "models or corrupt")
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in tensors.items()}, strict=True)


def _save_module(module: nn.Module, cfg_json: dict[str, Any], path, extra: dict[str, Any] | None) -> Path:
    stem = _stem(path)
    info = {"format": FORMAT, "config": cfg_json, **(extra or {})}
    _atomic_save_tensors(module.state_dict(), stem.with_suffix(".safetensors"), {"format": FORMAT})
    atomic_write_text(stem.with_suffix(".json"), json.dumps(info, indent=2) + "\n")
    return stem.with_suffix(".safetensors")


def _read_info(path) -> tuple[Path, dict[str, Any]]:
    stem = _stem(path)
    jpath = stem.with_suffix(".json")
    if not jpath.exists():
        raise WeightsError(f"no config '{jpath}' beside the weights; a checkpoint is a .safetensors with its .json")
    info = json.loads(jpath.read_text())
    if info.get("format") != FORMAT:
        raise WeightsError(f"'{jpath}' has format {info.get('format')!r}, expected {FORMAT!r}; convert it with "
                           "`emoget blend` or re-export it")
    return stem, info


def save_generator(G: Generator, path: str | os.PathLike, *, extra: dict[str, Any] | None = None) -> Path:
    """Write ``path.safetensors`` and ``path.json`` (config + ``extra`` info) atomically; returns the .safetensors."""
    return _save_module(G, G.cfg.to_json(), path, extra)


def load_generator(path: str | os.PathLike, *, device: str | torch.device = "cpu",
                   dtype: torch.dtype = torch.float32) -> Generator:
    """Load a generator saved by :func:`save_generator` (strict keys and shapes), in eval mode."""
    stem, info = _read_info(path)
    cfg = GeneratorConfig.from_json(info["config"])
    G = Generator(cfg, seed=None)
    tensors, _ = _read_tensors(stem.with_suffix(".safetensors"))
    load_state_strict(G, tensors, what=f"'{stem.with_suffix('.safetensors')}'")
    return G.to(device=device, dtype=dtype).eval().requires_grad_(False)


def save_discriminator(D: Discriminator, path: str | os.PathLike) -> Path:
    """Write ``path.safetensors`` + ``path.json`` for a discriminator."""
    return _save_module(D, D.cfg.to_json(), path, None)


def load_discriminator(path: str | os.PathLike, *, device="cpu", dtype=torch.float32) -> Discriminator:
    stem, info = _read_info(path)
    D = Discriminator(DiscriminatorConfig.from_json(info["config"]), seed=None)
    tensors, _ = _read_tensors(stem.with_suffix(".safetensors"))
    load_state_strict(D, tensors, what=f"'{stem.with_suffix('.safetensors')}'")
    return D.to(device=device, dtype=dtype)


def discriminator_beside(generator_path: str | os.PathLike) -> Path | None:
    """The discriminator a generator's JSON names (``"discriminator"``, a file beside it), if it is there: the
    one it was trained against, which fine-tuning and further training need."""
    stem, info = _read_info(generator_path)
    name = info.get("discriminator")
    if not name:
        return None
    path = stem.parent / Path(name).name  # beside the generator, never elsewhere
    return path if path.exists() else None


# ----------------------------------------------------------------------------------------------- training state

def _optimizer_tensors(opt: torch.optim.Optimizer, names: dict[int, str], prefix: str
                       ) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    tensors, groups = {}, []
    for group in opt.param_groups:
        groups.append({k: v for k, v in group.items() if k != "params"} | {
            "params": [names[id(p)] for p in group["params"]]})
        for p in group["params"]:
            for k, v in opt.state.get(p, {}).items():
                tensors[f"{prefix}.{names[id(p)]}.{k}"] = torch.as_tensor(v)
    return tensors, groups


def _load_optimizer(opt: torch.optim.Optimizer, module: nn.Module, groups: list[dict[str, Any]],
                    tensors: dict[str, torch.Tensor], prefix: str) -> None:
    params = dict(module.named_parameters())
    if len(groups) != len(opt.param_groups):
        raise WeightsError("the optimiser in the checkpoint has a different layout; start a new run folder")
    for group, saved in zip(opt.param_groups, groups):
        names = saved["params"]
        if [params[n] for n in names if n in params] != group["params"] or len(names) != len(group["params"]):
            raise WeightsError("the optimiser in the checkpoint trains different parameters (freeze options "
                               "changed?); resume with the same options or start a new run folder")
        for k, v in saved.items():
            if k != "params":
                group[k] = tuple(v) if isinstance(v, list) else v
        for n in names:
            p = params[n]
            st = {k.removeprefix(f"{prefix}.{n}."): t for k, t in tensors.items() if k.startswith(f"{prefix}.{n}.")}
            if st:
                opt.state[p] = {k: (t.to(p.device) if k != "step" else t) for k, t in st.items()}


def save_training_state(path: str | os.PathLike, *, modules: dict[str, nn.Module],
                        optimizers: dict[str, tuple[torch.optim.Optimizer, nn.Module]],
                        rng: dict[str, torch.Tensor], info: dict[str, Any]) -> Path:
    """Write every tensor of a training run to ``path`` (a ``.safetensors``) plus ``info`` as metadata, atomically.

    ``modules``: name -> module (state dicts are prefixed ``name.``); ``optimizers``: name -> (optimiser, the
    module whose named parameters it trains); ``rng``: name -> RNG state tensor; ``info``: JSON-able bookkeeping.
    """
    path = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    for name, m in modules.items():
        tensors.update({f"{name}.{k}": v for k, v in m.state_dict().items()})
    opt_info = {}
    for name, (opt, module) in optimizers.items():
        names = {id(p): n for n, p in module.named_parameters()}
        t, groups = _optimizer_tensors(opt, names, name)
        tensors.update(t)
        opt_info[name] = groups
    tensors.update({f"rng.{k}": v for k, v in rng.items()})
    meta = {"format": STATE_FORMAT, **info, "optimizers": opt_info}
    text = json.dumps(meta)
    _atomic_save_tensors(tensors, path, {"format": STATE_FORMAT, "state": text})
    atomic_write_text(path.with_suffix(".json"), json.dumps(meta, indent=2) + "\n")
    return path


def read_training_state(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and bookkeeping of a training state file (no modules built)."""
    tensors, meta = _read_tensors(Path(path))
    if meta.get("format") != STATE_FORMAT:
        raise WeightsError(f"'{path}' is not a training state ({meta.get('format')!r}); pass a run folder's "
                           "checkpoint/state.safetensors")
    return tensors, json.loads(meta["state"])


def read_training_info(path: str | os.PathLike) -> dict[str, Any]:
    """Only the bookkeeping of a training state file (cheap: no tensors are read)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:
        raise WeightsError(f"'{path}' is not a readable safetensors file ({exc}); delete it to restart") from exc
    if meta.get("format") != STATE_FORMAT:
        raise WeightsError(f"'{path}' is not a training state ({meta.get('format')!r})")
    return json.loads(meta["state"])


def subdict(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors under ``prefix.``, with the prefix removed."""
    return {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def load_training_state(path: str | os.PathLike, *, modules: dict[str, nn.Module],
                        optimizers: dict[str, tuple[torch.optim.Optimizer, nn.Module]]
                        ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Restore ``modules`` and ``optimizers`` in place (strict); returns (rng states, info)."""
    tensors, info = read_training_state(path)
    for name, m in modules.items():
        load_state_strict(m, subdict(tensors, name), what=f"'{name}' in '{path}'")
    for name, (opt, module) in optimizers.items():
        _load_optimizer(opt, module, info["optimizers"][name], tensors, name)
    return subdict(tensors, "rng"), info
