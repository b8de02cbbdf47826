"""Cross-style identity: is the person in every style the same person as in the photo?

The measure is colour likeness of the two attributes every default style
carries in colour: skin and hair. For an input (a photo's aligned crop, or a
render) and each style's output, take the median colour of the skin region and
of the hair region, convert to CIELAB (D65) and report the CIEDE2000 difference
ΔE00 (about 2.3 is a just-noticeable difference; above ~10 reads as another
colour).

Regions:

* photos: from the 68 iBUG landmarks (:func:`photo_regions`): two cheek
  polygons for skin, a band above the eyebrows for hair;
* style outputs: a per-style :class:`RegionTemplates` map, measured on the
  renders themselves (:func:`build_templates`): render the same identity with
  two skin tones (two hair colours) and mark the pixels that change (pixels
  that change with the hair colour are hair, not skin). Cartoon
  faces defeat photo landmark detectors, while the renders tell exactly where
  each style draws skin and hair.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from skimage.color import deltaE_ciede2000, rgb2lab

log = logging.getLogger(__name__)

# Cheek polygons (iBUG indices): jaw, mouth corner, nose side, below the eye.
_LEFT_CHEEK = (1, 2, 3, 4, 48, 31, 41, 36)
_RIGHT_CHEEK = (15, 14, 13, 12, 54, 35, 46, 45)
MIN_PIXELS = 8


def to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB ``uint8 [...,3]`` → CIELAB (D65) ``float64 [...,3]``."""
    return rgb2lab(np.asarray(rgb, dtype=np.uint8)[None].astype(np.float64) / 255.0)[0]


def delta_e(a: np.ndarray, b: np.ndarray) -> float:
    """CIEDE2000 difference of two sRGB colours ``uint8 [3]``."""
    la, lb = to_lab(np.asarray(a)[None]), to_lab(np.asarray(b)[None])
    return float(deltaE_ciede2000(la, lb)[0])


def median_colour(img: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
    """Per-channel median ``uint8 [3]`` of ``img [H,W,3]`` where ``mask [H,W]`` is true; None if < MIN_PIXELS."""
    if mask.shape != img.shape[:2]:
        raise ValueError(f"mask {mask.shape} does not match image {img.shape[:2]}")
    px = img[mask]
    if len(px) < MIN_PIXELS:
        return None
    return np.median(px, axis=0).round().astype(np.uint8)


def _polygon_mask(shape: tuple[int, int], pts: np.ndarray) -> np.ndarray:
    im = Image.new("L", (shape[1], shape[0]), 0)
    ImageDraw.Draw(im).polygon([tuple(map(float, p)) for p in pts], fill=1)
    return np.asarray(im, dtype=bool)


def photo_regions(points: np.ndarray, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """Skin and hair masks ``bool [H,W]`` of a face from its landmarks ``float32 [68,2]`` (x, y pixels).

    Skin: the two cheek polygons shrunk by 20% towards their centres (away from
    the eyes, nose and beard line). Hair: the band from 25% to 55% of the
    brow-to-chin height above the highest brow point, between the outer eye
    corners widened by half (clipped to the image). For a bald person the hair
    band holds scalp and reads as skin: that is what the photo shows.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.shape != (68, 2):
        raise ValueError(f"points must be [68,2], got {points.shape}")
    h, w = shape[:2]
    skin = np.zeros((h, w), dtype=bool)
    for idx in (_LEFT_CHEEK, _RIGHT_CHEEK):
        poly = points[list(idx)]
        c = poly.mean(0)
        skin |= _polygon_mask((h, w), c + 0.8 * (poly - c))
    brow = points[17:27, 1].min()
    face_h = max(points[8, 1] - brow, 1.0)
    x0, x1 = points[36, 0], points[45, 0]
    cx, half = float(x0 + x1) / 2, float(abs(x1 - x0)) * 0.75
    y0, y1 = float(brow - 0.55 * face_h), float(brow - 0.25 * face_h)
    hair = np.zeros((h, w), dtype=bool)
    ys = slice(max(round(y0), 0), max(round(y1), 0))
    xs = slice(max(round(cx - half), 0), max(round(cx + half), 0))
    hair[ys, xs] = True
    return {"skin": skin, "hair": hair}


@dataclass(frozen=True)
class RegionTemplates:
    """Where each style draws skin and hair: ``maps[style][region]`` float32 ``[R,R]`` in [0,1].

    The value at a pixel is the fraction of template identities whose skin (hair)
    covers it; :meth:`mask` thresholds it.
    """

    resolution: int
    maps: dict[str, dict[str, np.ndarray]]

    def mask(self, style: str, region: str, *, size: int | None = None, threshold: float = 0.5) -> np.ndarray:
        """``bool [size,size]`` pixels that are ``region`` for most identities in ``style``."""
        m = self.maps[style][region]
        if size and size != self.resolution:
            m = np.asarray(Image.fromarray(m.astype(np.float32), mode="F").resize((size, size), Image.BILINEAR))
        return m >= threshold

    def save(self, path: str | os.PathLike) -> None:
        from safetensors.numpy import save_file

        tensors = {f"{s}/{r}": m.astype(np.float32) for s, d in self.maps.items() for r, m in d.items()}
        save_file(tensors, str(path), metadata={"resolution": str(self.resolution)})

    @classmethod
    def load(cls, path: str | os.PathLike) -> RegionTemplates:
        from safetensors import safe_open

        maps: dict[str, dict[str, np.ndarray]] = {}
        with safe_open(str(path), framework="numpy") as f:
            res = int(f.metadata()["resolution"])
            for key in f.keys():  # noqa: SIM118 - safe_open is not a mapping
                style, region = key.split("/")
                maps.setdefault(style, {})[region] = f.get_tensor(key)
        return cls(res, maps)


def build_templates(*, resolution: int = 64, identities: int = 24, seed: int = 1234,
                    styles: tuple[str, ...] | None = None, threshold: int = 24) -> RegionTemplates:
    """Measure each style's skin and hair regions by rendering identities twice with one attribute changed.

    Skin: the lightest vs the darkest tone; hair: black vs blond (with no beard,
    so facial hair does not count as hair). A pixel whose colour moves by more
    than ``threshold`` (sum of absolute RGB differences) belongs to the region.
    Needs Node and the style data packages (as ``make data`` does).
    """
    from face2emoticon.styledata import render
    from face2emoticon.styledata.options import render_job
    from face2emoticon.styledata.people import sample_identities
    from face2emoticon.styles import STYLE_NAMES

    styles = styles or STYLE_NAMES
    people = [replace(p, beard=False, glasses=False, hair_length="long" if p.hair_length == "bald" else p.hair_length)
              for p in sample_identities(identities, seed=seed)]
    variants = {
        "skin": (lambda p: replace(p, skin=0), lambda p: replace(p, skin=4)),
        "hair": (lambda p: replace(p, hair_colour="black"), lambda p: replace(p, hair_colour="blond")),
    }
    with tempfile.TemporaryDirectory() as tmp:
        jobs, keys = [], []
        for s in styles:
            for region, (a, b) in variants.items():
                for i, p in enumerate(people):
                    for v, f in (("a", a), ("b", b)):
                        out = str(Path(tmp) / f"{s}_{region}_{i}_{v}.png")
                        jobs.append({**render_job(s, f(p)), "out": out, "size": resolution})
                keys.append((s, region))
        render(jobs, workers=1)
        maps: dict[str, dict[str, np.ndarray]] = {}
        for s, region in keys:
            acc = np.zeros((resolution, resolution), dtype=np.float32)
            for i in range(len(people)):
                ia = np.asarray(Image.open(Path(tmp) / f"{s}_{region}_{i}_a.png").convert("RGB"), dtype=np.int32)
                ib = np.asarray(Image.open(Path(tmp) / f"{s}_{region}_{i}_b.png").convert("RGB"), dtype=np.int32)
                acc += (np.abs(ia - ib).sum(-1) > threshold)
            maps.setdefault(s, {})[region] = acc / len(people)
        # Some styles recolour hair with the skin tone (Twemoji): hair pixels are not skin.
        for d in maps.values():
            d["skin"] = np.where(d["hair"] >= 0.5, 0.0, d["skin"]).astype(np.float32)
    return RegionTemplates(resolution, maps)


def style_colours(img: np.ndarray, style: str, templates: RegionTemplates) -> dict[str, np.ndarray | None]:
    """Median skin and hair colours ``uint8 [3]`` (or None) of a style image ``uint8 [R,R,3]``."""
    return {r: median_colour(img, templates.mask(style, r, size=img.shape[0])) for r in ("skin", "hair")}


def photo_colours(img: np.ndarray, points: np.ndarray) -> dict[str, np.ndarray | None]:
    """Median skin and hair colours of a photo crop ``uint8 [H,W,3]`` with landmarks ``[68,2]``."""
    regions = photo_regions(points, img.shape[:2])
    return {r: median_colour(img, m) for r, m in regions.items()}


def compare(reference: dict[str, np.ndarray | None], outputs: dict[str, np.ndarray],
            templates: RegionTemplates) -> dict[str, dict[str, float | None]]:
    """ΔE00 per style and region between ``reference`` colours and each style output ``uint8 [R,R,3]``.

    ``None`` where a region could not be measured on either side.
    """
    table: dict[str, dict[str, float | None]] = {}
    for style, img in outputs.items():
        got = style_colours(img, style, templates)
        table[style] = {r: (None if reference.get(r) is None or got[r] is None else delta_e(reference[r], got[r]))
                        for r in ("skin", "hair")}
    return table


def format_table(rows: dict[str, dict[str, dict[str, float | None]]]) -> str:
    """Markdown table ``input × style`` of ``skin / hair`` ΔE00 from ``{input: compare(...)}``."""
    styles = sorted({s for t in rows.values() for s in t})
    lines = ["| input | " + " | ".join(styles) + " |", "|---|" + "---|" * len(styles)]

    def cell(v: dict[str, float | None]) -> str:
        return " / ".join("–" if v.get(r) is None else f"{v[r]:.1f}" for r in ("skin", "hair"))

    for name, t in rows.items():
        lines.append(f"| {name} | " + " | ".join(cell(t.get(s, {})) for s in styles) + " |")
    return "\n".join(lines)


def summary(rows: dict[str, dict[str, dict[str, float | None]]]) -> dict[str, dict[str, float | None]]:
    """Mean ΔE00 per style and region over inputs (measured ones only)."""
    out: dict[str, dict[str, float | None]] = {}
    for t in rows.values():
        for s, v in t.items():
            for r, x in v.items():
                if x is not None:
                    out.setdefault(s, {}).setdefault(r, []).append(x)
    return {s: {r: float(np.mean(xs)) for r, xs in d.items()} for s, d in out.items()}


def dumps(obj) -> str:
    """JSON with numpy values turned into plain numbers."""
    return json.dumps(obj, indent=2, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
