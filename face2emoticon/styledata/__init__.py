"""Offline style datasets, rendered from npm packages (``make data``).

Layout written under ``out`` (``data/`` by default, git-ignored)::

    styles/<style>/<identity:05d>.png        neutral class images, size x size RGB
    pairs/<style>/<identity:05d>_<expr>.png  the first ``pairs`` identities in every expression
    manifest.jsonl                           one line per image: path, style, package@version,
                                             art licence, seed, identity (id + attributes), options
    manifest.json                            summary: styles, counts, arguments, sha256 of manifest.jsonl

Every identity is rendered in every style with matching options (same skin
tone, hair colour and length, glasses, beard), so images with the same
``identity_id`` are true cross-style pairs. The manifest depends only on the
arguments, so its sha256 (recorded in the weights registry) names the data.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from face2emoticon.styledata.options import render_job
from face2emoticon.styledata.people import EXPRESSIONS, Identity, sample_identities
from face2emoticon.styles import STYLES, Style, get_style
from landmarks.errors import EmogetError

log = logging.getLogger(__name__)

NODE_DIR = Path(__file__).resolve().parent
RENDER_SCRIPT = NODE_DIR / "render.mjs"


class StyleDataError(EmogetError):
    """The style data could not be rendered (Node or its packages missing, a render failed)."""


@dataclass(frozen=True)
class Record:
    """One manifest line: an image and everything that made it."""

    path: str  # relative to the data folder
    style: str
    package: str
    licence: str
    expression: str
    identity: Identity
    job: dict

    def to_json(self) -> dict:
        return {"path": self.path, "style": self.style, "package": self.package, "licence": self.licence,
                "expression": self.expression, "identity_id": self.identity.identity_id, "seed": self.identity.seed,
                "identity": self.identity.to_json(), **self.job}


def plan(*, count: int, pairs: int, seed: int, styles: tuple[Style, ...] = STYLES) -> list[Record]:
    """Every image to render: ``count`` identities x styles (neutral), plus ``pairs`` identities x expressions."""
    people = sample_identities(count, seed=seed)
    records = []
    for st in styles:
        for p in people:
            records.append(Record(f"styles/{st.name}/{p.identity_id:05d}.png", st.name, st.package, st.licence,
                                  "neutral", p, render_job(st, p, "neutral")))
    for st in styles:
        for p in people[:pairs]:
            for e in EXPRESSIONS:
                records.append(Record(f"pairs/{st.name}/{p.identity_id:05d}_{e}.png", st.name, st.package,
                                      st.licence, e, p, render_job(st, p, e)))
    return records


def manifest_lines(records: list[Record]) -> bytes:
    """The manifest as bytes (sorted keys, one JSON object a line); its sha256 names the data set."""
    return b"".join(json.dumps(r.to_json(), sort_keys=True).encode() + b"\n" for r in records)


def ensure_node_modules(*, node_dir: Path = NODE_DIR) -> None:
    """Install the pinned npm packages (``npm ci``) if ``node_modules`` is absent."""
    if shutil.which("node") is None:
        raise StyleDataError("Node.js is needed to render the style data; install nodejs (>= 18) and npm")
    if (node_dir / "node_modules" / "@dicebear" / "core").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise StyleDataError(f"npm packages missing in {node_dir}; install npm and run `npm ci` there")
    log.info("installing the pinned npm packages in %s", node_dir)
    res = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=node_dir, capture_output=True, text=True,
                         check=False)
    if res.returncode != 0:
        raise StyleDataError(f"`npm ci` failed in {node_dir}: {res.stderr.strip()[-500:]}")


def render(jobs: list[dict], *, workers: int = 1, node_dir: Path = NODE_DIR) -> None:
    """Render renderer jobs (each with ``out`` and ``size``) with ``workers`` Node processes."""
    if not jobs:
        return
    ensure_node_modules(node_dir=node_dir)
    workers = max(1, min(workers, len(jobs)))
    chunks = [jobs[i::workers] for i in range(workers)]

    def run(chunk: list[dict]) -> list[dict]:
        fd, path = tempfile.mkstemp(suffix=".jsonl")
        try:
            with os.fdopen(fd, "w") as f:
                f.write("\n".join(json.dumps(j) for j in chunk))
            res = subprocess.run(["node", str(node_dir / "render.mjs"), path], cwd=node_dir, capture_output=True,
                                 text=True, check=False)
        finally:
            os.unlink(path)
        if res.returncode != 0:
            raise StyleDataError(f"the renderer failed: {res.stderr.strip()[-500:]}")
        return [json.loads(line) for line in res.stdout.splitlines() if line.strip()]

    with ThreadPoolExecutor(workers) as ex:
        results = [r for rs in ex.map(run, chunks) for r in rs]
    bad = [r for r in results if not r.get("ok")]
    if bad or len(results) != len(jobs):
        first = bad[0] if bad else {"out": "?", "error": f"{len(results)} results for {len(jobs)} jobs"}
        raise StyleDataError(f"{len(bad)} renders failed, first: {first['out']}: {first.get('error')}")


def build(out: str | os.PathLike, *, count: int = 3000, pairs: int = 50, seed: int = 0, size: int = 256,
          styles: tuple[str, ...] | None = None, workers: int = 1, force: bool = False) -> dict:
    """Render the style data set into ``out`` and write its manifest; returns the summary dict.

    Images already present are kept unless ``force`` (the manifest says what
    they must be, so a rerun with the same arguments completes an interrupted one).
    """
    out = Path(out).resolve()
    chosen = tuple(get_style(s) for s in styles) if styles else STYLES
    records = plan(count=count, pairs=pairs, seed=seed, styles=chosen)
    jobs = [{**r.job, "out": str(out / r.path), "size": size} for r in records
            if force or not (out / r.path).exists()]
    log.info("%d images planned, %d to render", len(records), len(jobs))
    render(jobs, workers=workers)
    body = manifest_lines(records)
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.jsonl").write_bytes(body)
    digest = hashlib.sha256(body).hexdigest()
    summary = {
        "manifest_sha256": digest,
        "arguments": {"count": count, "pairs": pairs, "seed": seed, "size": size},
        "styles": {s.name: {"package": s.package, "licence": s.licence, "licence_url": s.licence_url,
                            "creator": s.creator, "images": count, "pairs": min(pairs, count) * len(EXPRESSIONS)}
                   for s in chosen},
        "renderer": "face2emoticon/styledata/render.mjs with @resvg/resvg-js@2.6.2 (system fonts off)",
    }
    (out / "manifest.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "manifest.sha256").write_text(f"{digest}  manifest.jsonl\n")
    return summary
