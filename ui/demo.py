"""The headless main job: the bundled sample photos in every style (``emoget demo``, ``make demo``)."""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

from PIL import Image

from ui.pack import contact_sheet
from ui.pipeline import (
    Pipeline,
    PipelineResult,
    RenderOptions,
    default_pipeline,
)

log = logging.getLogger(__name__)

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "samples"
SAMPLE_SUFFIXES = (".jpg", ".jpeg", ".png")


def sample_photos() -> list[Path]:
    """The bundled public-domain sample photos (see samples/README.md)."""
    return sorted(p for p in SAMPLES_DIR.iterdir() if p.suffix.lower() in SAMPLE_SUFFIXES)


def run_demo(out_dir: str | os.PathLike, *, options: RenderOptions | None = None, photos=None,
             pipeline: Pipeline | None = None) -> Iterator[tuple[Path, PipelineResult, Path]]:
    """Render each photo in every style (unless ``options.styles`` names some) × ``options.expressions``.

    Writes ``out_dir/<photo>/<photo>_<style>_<expression>.<fmt>`` and ``out_dir/<photo>_sheet.png``;
    yields (photo, result, sheet path) per photo. Expressions the motion stage lacks are left out.
    """
    pipeline = pipeline or default_pipeline()
    options = options or RenderOptions(expressions=("happy", "surprised", "wink"))
    known = pipeline.expressions()
    expressions = tuple(e for e in options.expressions if e in known) or tuple(known[:1])
    options = options.replace(expressions=expressions,
                              styles=options.styles or tuple(pipeline.styles(options)))
    out_dir = Path(out_dir)
    for photo in [Path(p) for p in photos] if photos else sample_photos():
        result = pipeline.render(photo, options=options, output=out_dir / photo.stem)
        sheet = out_dir / f"{photo.stem}_sheet.png"
        Image.fromarray(contact_sheet(result.clips)).save(sheet)
        log.info("%s: %s", photo.name, {k: round(v, 2) for k, v in result.timings.items()})
        yield photo, result, sheet
