"""The default weights emoget ships, and their registry.

``weights/registry.json`` names every shipped file with its sha256, size,
format, licence and origin (the exact command and data that produced it, with
the data manifest's hash), plus its metrics. Entries with a ``url`` are not
shipped: ``emoget weights fetch NAME`` downloads them on request and checks the
hash. Nothing here downloads on its own.

Writers (training commands) call :func:`register` after saving a file, so the
registry never drifts from what is on disk.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from landmarks.errors import WeightsError

WEIGHTS_DIR = Path(__file__).resolve().parent
REGISTRY_PATH = WEIGHTS_DIR / "registry.json"
CACHE_DIR = Path(os.environ.get("EMOGET_CACHE", Path.home() / ".cache" / "emoget"))


@dataclass
class WeightEntry:
    """One weight file. ``path`` is relative to ``weights/`` for shipped files."""

    name: str
    path: str
    kind: str  # "generator", "encoder", "motion", "upscaler", ...
    format: str = "safetensors+json"
    sha256: str = ""
    size: int = 0
    licence: str = ""
    description: str = ""
    origin: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    url: str = ""  # set only for files fetched on request, never shipped
    root: Path = field(default=WEIGHTS_DIR, repr=False, compare=False)  # the registry's folder; not saved

    @property
    def file(self) -> Path:
        p = Path(self.path)
        if p.is_absolute():
            return p
        return (CACHE_DIR if self.url else self.root) / p

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        del d["root"]
        return d


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def load_registry(path: Path = REGISTRY_PATH) -> dict[str, WeightEntry]:
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    return {e["name"]: WeightEntry(**e, root=path.parent) for e in data["weights"]}


def save_registry(entries: dict[str, WeightEntry], path: Path = REGISTRY_PATH) -> None:
    data = {"weights": [e.to_json() for e in sorted(entries.values(), key=lambda e: e.name)]}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def get(name: str) -> WeightEntry:
    entries = load_registry()
    if name not in entries:
        known = ", ".join(sorted(entries)) or "none"
        raise WeightsError(f"no weights named {name!r} in the registry (known: {known}); see `emoget weights list`")
    return entries[name]


def path_of(name: str, *, verify: bool = False) -> Path:
    """Path of a registered weight file; raises :class:`WeightsError` if it is absent."""
    entry = get(name)
    file = entry.file
    if not file.exists():
        hint = f"run `emoget weights fetch {name}`" if entry.url else "reinstall emoget or re-run its training command"
        raise WeightsError(f"weights {name!r} not found at {file}; {hint}")
    if verify:
        check(entry)
    return file


def check(entry: WeightEntry) -> None:
    """Raise :class:`WeightsError` if the file's sha256 differs from the registry's."""
    digest = sha256_of(entry.file)
    if entry.sha256 and digest != entry.sha256:
        raise WeightsError(
            f"weights {entry.name!r} at {entry.file} have sha256 {digest[:12]}..., "
            f"registry says {entry.sha256[:12]}...; the file is corrupt or was replaced"
        )


def register(name: str, file: str | os.PathLike, *, kind: str, licence: str, origin: dict[str, Any],
             metrics: dict[str, Any] | None = None, description: str = "", fmt: str = "safetensors+json",
             registry_path: Path = REGISTRY_PATH) -> WeightEntry:
    """Add or update a shipped file's entry, hashing it as it is on disk now."""
    file = Path(file).resolve()
    try:
        rel = str(file.relative_to(registry_path.parent.resolve()))
    except ValueError:
        rel = str(file)
    entries = load_registry(registry_path)
    old = entries.get(name)
    entry = WeightEntry(
        name=name, path=rel, kind=kind, format=fmt, sha256=sha256_of(file), size=file.stat().st_size,
        licence=licence, description=description or (old.description if old else ""), origin=origin,
        metrics={**(old.metrics if old else {}), **(metrics or {})}, root=registry_path.parent,
    )
    entries[name] = entry
    save_registry(entries, registry_path)
    return entry


def fetch(name: str, *, progress: bool = True) -> Path:
    """Download an entry that has a ``url`` into the cache, verifying its sha256.

    Writes to a temporary file first and renames it into place only when the
    hash matches, so an interrupted or tampered download never lands.
    """
    entry = get(name)
    if not entry.url:
        raise WeightsError(f"weights {name!r} are shipped with emoget; nothing to fetch")
    if not entry.sha256:
        raise WeightsError(f"registry entry {name!r} has no sha256; refusing to download unverifiable weights")
    dest = entry.file
    if dest.exists() and sha256_of(dest) == entry.sha256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, suffix=".part")
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(entry.url, timeout=60) as resp:
            total = int(resp.headers.get("Content-Length") or 0)
            done = 0
            while block := resp.read(1 << 20):
                out.write(block)
                h.update(block)
                done += len(block)
                if progress and total:
                    print(f"\r{name}: {done / total:6.1%}", end="", flush=True)
        if progress:
            print()
        if h.hexdigest() != entry.sha256:
            raise WeightsError(f"download of {name!r} has sha256 {h.hexdigest()}, expected {entry.sha256}; not saved")
        os.replace(tmp, dest)
    except OSError as exc:
        raise WeightsError(f"could not download {name!r} from {entry.url}: {exc}") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest
