"""Training images: a folder (or zip) with one subfolder per class, resized once and cached as uint8 tensors.

Layout: ``DATA/<class name>/<any name>.png|jpg|jpeg|webp`` (a zip with the same layout inside works too; a
single top-level folder inside the zip is skipped). Images of any size are centre-cropped to a square,
composited over ``background`` when they have alpha, and resized with Lanczos filtering. The cache is a
safetensors file with ``images uint8 [N,3,R,R]`` and ``labels int64 [N]``; its name carries the sha256 of the
data manifest (every file's relative path and content hash), so editing the data invalidates it.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from landmarks.errors import EmogetError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


class DatasetError(EmogetError):
    """The training data folder is missing, empty or badly laid out."""


@dataclass
class ImageDataset:
    """``images uint8 [N,3,R,R]``, ``labels int64 [N]`` (index into ``class_names``), manifest hash."""

    images: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]
    manifest_sha256: str

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def resolution(self) -> int:
        return self.images.shape[-1]

    def class_counts(self) -> dict[str, int]:
        counts = torch.bincount(self.labels, minlength=len(self.class_names)).tolist()
        return dict(zip(self.class_names, counts))

    def indices_for_step(self, step: int, batch: int, *, seed: int) -> torch.Tensor:
        """Dataset indices of the ``batch`` images shown at ``step``: epoch-wise permutations from ``seed``.

        A pure function of (step, batch, seed), so a resumed run sees exactly the same data order.
        """
        n = len(self)
        pos = torch.arange(step * batch, (step + 1) * batch)
        epochs = (pos // n).tolist()
        out = torch.empty(batch, dtype=torch.long)
        perms: dict[int, torch.Tensor] = {}
        for i, e in enumerate(epochs):
            if e not in perms:
                perms[e] = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + e))
            out[i] = perms[e][pos[i] % n]
        return out

    def batch(self, indices: torch.Tensor, *, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``float32 [B,3,R,R]`` in ``[-1,1]`` and labels ``[B]`` for ``indices``."""
        img = self.images[indices].to(device=device, dtype=torch.float32) / 127.5 - 1
        return img, self.labels[indices].to(device)


def _list_sources(root: Path) -> tuple[list[tuple[str, str]], callable]:
    """[(class, relative name)] and a reader ``name -> bytes`` for a folder or a zip."""
    if root.is_file() and zipfile.is_zipfile(root):
        zf = zipfile.ZipFile(root)
        names = [n for n in zf.namelist() if n.lower().endswith(IMAGE_EXTENSIONS) and not n.startswith("__MACOSX")]
        parts = [Path(n).parts for n in names]
        if parts and all(len(p) >= 3 for p in parts) and len({p[0] for p in parts}) == 1:
            parts = [p[1:] for p in parts]
        items = [(p[0], n) for p, n in zip(parts, names) if len(p) == 2]
        return sorted(items), zf.read
    if not root.is_dir():
        raise DatasetError(f"training data '{root}' not found; pass a folder with one subfolder per class (or a zip)")
    items = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for f in sorted(sub.rglob("*")):
            if f.suffix.lower() in IMAGE_EXTENSIONS and f.is_file():
                items.append((sub.name, str(f.relative_to(root))))
    return items, lambda name: (root / name).read_bytes()


def paired_index(source: str | os.PathLike) -> torch.Tensor:
    """``int64 [N_identities, N_classes]``: for every file name present in every class folder (an identity drawn
    in every style, e.g. ``<style>/00042.png``), its index in :func:`load_dataset`'s order; rows sorted by name."""
    items, _ = _list_sources(Path(source))
    classes = sorted({c for c, _ in items})
    where: dict[str, dict[str, int]] = {}
    for i, (cls, name) in enumerate(items):
        where.setdefault(Path(name).name, {})[cls] = i
    names = sorted(n for n, by_class in where.items() if len(by_class) == len(classes))
    if not names:
        raise DatasetError(f"no image name under '{source}' is in every class folder; paired data draws each "
                           "identity in every style under one name (`make data`)")
    return torch.tensor([[where[n][c] for c in classes] for n in names], dtype=torch.long)


def _to_square_rgb(data: bytes, resolution: int, background: tuple[int, int, int]) -> np.ndarray:
    im = Image.open(io.BytesIO(data))
    im.load()
    if im.mode in ("RGBA", "LA", "P"):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, background + (255,))
        im = Image.alpha_composite(bg, im)
    im = im.convert("RGB")
    w, h = im.size
    s = min(w, h)
    im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    if s != resolution:
        im = im.resize((resolution, resolution), Image.LANCZOS)
    return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1)


def load_dataset(source: str | os.PathLike, *, resolution: int, cache_dir: str | os.PathLike | None = None,
                 background: tuple[int, int, int] = (255, 255, 255)) -> ImageDataset:
    """Read (or reuse the cache of) a class-folder dataset at ``resolution`` px."""
    from face2emoticon.checkpoint import _atomic_save_tensors, _read_tensors

    root = Path(source)
    items, read = _list_sources(root)
    if not items:
        raise DatasetError(f"no images under '{root}'; expected '<class>/<image>.png' files "
                           f"({', '.join(IMAGE_EXTENSIONS)})")
    class_names = tuple(sorted({c for c, _ in items}))
    manifest = hashlib.sha256()
    blobs = []
    for cls, name in items:
        data = read(name)
        blobs.append(data)
        manifest.update(f"{name}\t{hashlib.sha256(data).hexdigest()}\n".encode())
    digest = manifest.hexdigest()
    cache = None
    if cache_dir is not None:
        bg = "".join(f"{v:02x}" for v in background)
        cache = Path(cache_dir) / f"dataset-{resolution}px-{bg}-{digest[:16]}.safetensors"
        if cache.exists():
            tensors, meta = _read_tensors(cache)
            log.info("using cached dataset %s", cache)
            return ImageDataset(tensors["images"], tensors["labels"], tuple(json.loads(meta["class_names"])), digest)
    images = np.empty((len(items), 3, resolution, resolution), dtype=np.uint8)
    for i, data in enumerate(blobs):
        try:
            images[i] = _to_square_rgb(data, resolution, background)
        except Exception as exc:
            raise DatasetError(f"cannot read '{items[i][1]}' in '{root}' ({exc}); remove or re-save it") from exc
    labels = torch.tensor([class_names.index(c) for c, _ in items], dtype=torch.long)
    ds = ImageDataset(torch.from_numpy(images), labels, class_names, digest)
    if cache is not None:
        _atomic_save_tensors({"images": ds.images, "labels": labels}, cache,
                             {"class_names": json.dumps(list(class_names)), "manifest_sha256": digest})
    log.info("dataset %s: %d images, classes %s", root, len(ds), ds.class_counts())
    return ds
