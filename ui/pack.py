"""A sticker pack: every expression × the chosen styles of one photo, in one zip.

Inside ``<name>.zip``::

    gif/<style>_<expression>.gif          every animation, plain GIF
    <preset>/<style>_<expression>.<ext>   the same fitted to a sticker preset (Discord by default)
    contact_sheet.png                     styles × expressions, each at its expression's apex
    ATTRIBUTION.txt                       the art licence of every style used
"""
from __future__ import annotations

import logging
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ui.pipeline import (
    Clip,
    LatentCache,
    Pipeline,
    PipelineResult,
    ProgressFn,
    RenderOptions,
    atomic_write,
)

log = logging.getLogger(__name__)

DEFAULT_PRESET = "discord"


@dataclass
class Pack:
    path: Path
    result: PipelineResult
    sheet: np.ndarray  # uint8 [H,W,3]
    entries: list[str]


def apex(frames: np.ndarray) -> np.ndarray:
    """The frame of ``frames`` (uint8 [T,H,W,3]) farthest from the first: the expression at its peak."""
    f = np.asarray(frames, dtype=np.int16)
    return np.asarray(frames[int(np.abs(f - f[:1]).mean(axis=(1, 2, 3)).argmax())])


def contact_sheet(clips: list[Clip], *, cell: int = 96) -> np.ndarray:
    """styles (rows) × expressions (columns) of ``clips``, each at its apex; uint8 [H,W,3]."""
    from face2emoticon.styledata.sheet import contact_sheet as grid

    styles = list(dict.fromkeys(c.style for c in clips))
    expressions = list(dict.fromkeys(c.expression for c in clips))
    by_key = {(c.style, c.expression): c for c in clips}
    rows = [[apex(by_key[s, e].frames) if (s, e) in by_key else None for e in expressions] for s in styles]
    return np.asarray(grid(rows, cell=cell, row_labels=styles, col_labels=expressions, label_width=72))


def attribution(styles) -> str:
    lines = ["Art licences of the styles in this pack:", ""]
    from face2emoticon.styles import StyleNotFound, get_style

    for name in styles:
        try:
            lines.append(f"- {name}: {get_style(name).attribution}")
        except StyleNotFound:  # a style from user weights: its licence is the weights' owner's to state
            lines.append(f"- {name}: from user-supplied weights; see their licence")
    return "\n".join(lines) + "\n"


def make_pack(photo, output: str | os.PathLike, *, options: RenderOptions, pipeline: Pipeline,
              preset: str | None = DEFAULT_PRESET, progress: ProgressFn | None = None,
              cache: LatentCache | None = None) -> Pack:
    """Render ``options.styles`` (default: all) × ``options.expressions`` for ``photo``; zip them to ``output``.

    ``cache``: the latent cache to use (default: the pipeline's own); the page passes each user's own.
    """
    if not options.styles:
        options = options.replace(styles=tuple(pipeline.styles(options)))
    result = pipeline.render(photo, options=options.replace(preset=None), progress=progress, cache=cache)
    sheet = contact_sheet(result.clips)
    entries = []
    with tempfile.TemporaryDirectory(prefix="emoget-pack-") as tmp:
        tmp = Path(tmp)
        ext = pipeline.extension(options.replace(preset=preset)) if preset else None
        for clip in result.clips:
            name = f"{clip.style}_{clip.expression}"
            pipeline.export(clip, tmp / "gif" / f"{name}.gif")
            if preset:
                pipeline.export(clip, tmp / preset / f"{name}.{ext}", preset=preset)
            if progress:
                progress("pack", (len(entries) + 1) / len(result.clips))
            entries.append(name)
        Image.fromarray(sheet).save(tmp / "contact_sheet.png")
        (tmp / "ATTRIBUTION.txt").write_text(attribution(options.styles))
        files = sorted(p for p in tmp.rglob("*") if p.is_file())

        def write(zpath: Path):
            with zipfile.ZipFile(zpath, "w", compression=zipfile.ZIP_DEFLATED) as z:
                for f in files:
                    z.write(f, f.relative_to(tmp).as_posix())

        path = atomic_write(output, write)
        names = [f.relative_to(tmp).as_posix() for f in files]
    log.info("pack %s: %d animations", path, len(entries))
    return Pack(path=path, result=result, sheet=sheet, entries=names)
