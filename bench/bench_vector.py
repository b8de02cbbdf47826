"""The vector stylizer's cost: seconds per still (cold Node start, warm, cached), attribute reading, per GIF.

Baseline in the same process: reading the PNG bytes back into an array (what every still pays besides
drawing). Wall-clock seconds on whatever else the machine is running; the renderer is one Node process.
Prints s/still cold (the first render: Node start + package load), warm (new attributes each time),
cached, s to read the attributes off an aligned photo, and s per 128 px GIF through the whole pipeline
(detection and attributes cached) with and without the drawn expression.
"""
from __future__ import annotations

import io
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def _people(n: int):
    from face2emoticon.attributes import Attributes
    from face2emoticon.styledata.people import HAIR_COLOURS, HAIR_LENGTHS
    from face2emoticon.vector import Person

    colours = list(HAIR_COLOURS)
    return [Person(Attributes(skin=i % 5, hair_colour=colours[i % len(colours)], hair_length=HAIR_LENGTHS[i % 3],
                              glasses=bool(i % 2), beard=bool(i % 3 == 0)), seed=i) for i in range(n)]


def main() -> None:
    import landmarks
    from face2emoticon.attributes import estimate
    from face2emoticon.styles import STYLE_NAMES
    from face2emoticon.vector import VectorStylizer
    from ui.pipeline import Pipeline, RenderOptions

    people = _people(24)
    s = VectorStylizer()
    t = time.perf_counter()
    first = s.render(people[0], "avataaars", size=256)
    cold = time.perf_counter() - t
    t = time.perf_counter()
    n = 0
    for p in people[1:]:
        for style in STYLE_NAMES:
            s.render(p, style, size=256)
            n += 1
    warm = (time.perf_counter() - t) / n
    t = time.perf_counter()
    for p in people[1:]:
        for style in STYLE_NAMES:
            s.render(p, style, size=256)
    cached = (time.perf_counter() - t) / n
    png = io.BytesIO()
    Image.fromarray(first).save(png, format="PNG")
    t = time.perf_counter()
    for _ in range(50):
        np.asarray(Image.open(io.BytesIO(png.getvalue())).convert("RGB"))
    decode = (time.perf_counter() - t) / 50
    s.close()
    print(f"still 256 px: cold {cold:.3f} s (Node start), warm {warm * 1e3:.1f} ms, cached {cached * 1e3:.3f} ms; "
          f"PNG decode baseline {decode * 1e3:.2f} ms (warm = {warm / decode:.1f}x decode)")

    image = landmarks.load_image(SAMPLES / "astronaut.png")
    face = landmarks.detect(image)
    crop = landmarks.align(image, face.points, size=256)
    estimate(crop.image, crop.points)  # load the segmentation model once
    t = time.perf_counter()
    for _ in range(5):
        estimate(crop.image, crop.points)
    print(f"attributes from a 256 px crop: {(time.perf_counter() - t) / 5:.3f} s")

    pipe = Pipeline()
    opts = RenderOptions(styles=("micah",), size=128, frames=24)
    with tempfile.TemporaryDirectory() as tmp:
        pipe.render(SAMPLES / "astronaut.png", options=opts.replace(expressions=("neutral",)))  # warm everything
        for expression, what in (("happy", "blend into the drawn expression"), ("wink", "warp only")):
            t = time.perf_counter()
            res = pipe.render(SAMPLES / "astronaut.png", options=opts.replace(expressions=(expression,)),
                              output=Path(tmp) / f"{expression}.gif")
            dt = time.perf_counter() - t
            parts = ", ".join(f"{k} {v:.2f}" for k, v in res.timings.items() if v >= 0.005)
            print(f"GIF 128 px x 24 frames, {expression} ({what}): {dt:.2f} s ({parts})")


FIGURE_PHOTOS = ("astronaut.png", "grace_hopper.jpg")
FIGURE_GIFS = (("astronaut.png", "micah", "happy"), ("grace_hopper.jpg", "avataaars", "surprised"),
               ("astronaut.png", "big-smile", "happy"), ("grace_hopper.jpg", "personas", "wink"),
               ("astronaut.png", "open-peeps", "angry"), ("grace_hopper.jpg", "twemoji", "happy"))


def figures(out: str | Path = "docs", *, size: int = 128) -> list[Path]:
    """The README's vector figures: ``vector_styles.png`` (each sample photo's crop, then its stills in every
    style), ``photo_<photo>.png`` (the aligned crop each GIF starts from) and ``vector_<style>_<expression>.gif``
    at ``size`` px."""
    from PIL import ImageDraw

    from face2emoticon.styles import STYLE_NAMES
    from ui.pipeline import Pipeline, RenderOptions

    out = Path(out)
    pipe = Pipeline()
    opts = RenderOptions(size=size, frames=24, fps=12)
    rows, crops = [], []
    for name in FIGURE_PHOTOS:
        res = pipe.render(SAMPLES / name, options=opts.replace(styles=STYLE_NAMES, expressions=("neutral",)))
        person = pipe.latent(res.image, pipe.face(res.image), options=opts)
        a = person.attributes
        tiles = [res.crop] + [c.still for c in res.clips]
        crops.append(out / f"photo_{Path(name).stem}.png")
        Image.fromarray(res.crop).resize((size, size), Image.Resampling.LANCZOS).save(crops[-1], optimize=True)
        caption = (f"{name}: skin {a.skin + 1}/5, {a.hair_colour} {a.hair_length} hair, "
                   f"glasses {'yes' if a.glasses else 'no'}, beard {'yes' if a.beard else 'no'}")
        rows.append((np.concatenate(tiles, 1), caption))
    label_h = 16
    header = Image.new("RGB", (rows[0][0].shape[1], label_h), "white")
    d = ImageDraw.Draw(header)
    for i, title in enumerate(("photo", *STYLE_NAMES)):
        d.text((i * size + 4, 2), title, fill=(0, 0, 0))
    parts = [np.asarray(header)]
    for img, caption in rows:
        cap = Image.new("RGB", (img.shape[1], label_h), "white")
        ImageDraw.Draw(cap).text((4, 2), caption, fill=(60, 60, 60))
        parts += [np.asarray(cap), img]
    files = [out / "vector_styles.png", *crops]
    Image.fromarray(np.concatenate(parts, 0)).save(files[0], optimize=True)
    for photo, style, expression in FIGURE_GIFS:
        path = out / f"vector_{style}_{expression}.gif"
        pipe.render(SAMPLES / photo, options=opts.replace(styles=(style,), expressions=(expression,)), output=path)
        files.append(path)
    return files


if __name__ == "__main__":
    import sys

    if "--figures" in sys.argv:  # python -m bench.bench_vector --figures
        for f in figures():
            print(f, f"{f.stat().st_size / 1024:.0f} KB")
    else:
        main()
