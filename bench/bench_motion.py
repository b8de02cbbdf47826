"""The shipped motion model's figures, recomputed: recognition accuracy of generated sequences by a
classifier trained on held-out prior sequences, diversity between seeds, mean jerk and loop closure,
each against the prior itself (the baseline, measured in the same process).

``python -m bench.bench_motion --figures`` writes the README's ``docs/expressions_sheet.png`` (each sample
photo's aligned crop at the apex of every expression) and ``docs/expressions_<happy|wink>.gif`` (Discord preset).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SIZE = 160
SHEET_GIFS = ("happy", "wink")


def main() -> None:
    import torch

    from video_gen.motion import load_motion_model
    from video_gen.train_motion import evaluate

    torch.set_num_threads(1)
    figs = evaluate(load_motion_model(), seed=1000, n_classifier=2000, n_eval=400, takes=6, groups_per_class=3)
    print(json.dumps(figs, indent=1))
    print(f"accuracy generated {figs['classifier_accuracy_generated']:.3f} (prior held-out "
          f"{figs['classifier_accuracy_prior_heldout']:.3f}); diversity ratio gen/prior "
          f"{figs['diversity_px_generated'] / figs['diversity_px_prior']:.2f}; jerk ratio gen/prior "
          f"{figs['jerk_px_generated'] / figs['jerk_px_prior']:.2f}; loop closure max {figs['loop_closure_px_max']} px")


def figures(out: str | Path = "docs") -> list[Path]:
    from PIL import Image, ImageDraw

    import landmarks
    from ui.demo import sample_photos
    from video_gen.animate import animate
    from video_gen.export import save_animation
    from video_gen.expressions import EXPRESSIONS

    out = Path(out)
    rows, files = [], []
    for photo in sorted(sample_photos(), key=lambda p: p.name != "grace_hopper.jpg"):
        image = landmarks.load_image(photo)
        crop = landmarks.align(image, landmarks.detect(image).points, size=SIZE)
        tiles = []
        for name in EXPRESSIONS:
            anim = animate(crop.image, crop.points, expression=name, frames=24, fps=12, seed=0)
            apex = int(np.argmax(np.abs(anim.points - crop.points).sum((1, 2))))
            tile = Image.fromarray(anim.frames[apex][..., :3])
            ImageDraw.Draw(tile).text((4, 2), name, fill=(255, 255, 0))
            tiles.append(np.asarray(tile))
            if photo.name == "grace_hopper.jpg" and name in SHEET_GIFS:
                files.append(save_animation(anim.frames, out / f"expressions_{name}.gif", fps=anim.fps, preset="discord"))
        rows.append(np.concatenate(tiles, 1))
    sheet = out / "expressions_sheet.png"
    Image.fromarray(np.concatenate(rows, 0)).quantize(256).save(sheet, optimize=True)
    return [sheet, *files]


if __name__ == "__main__":
    import sys

    if "--figures" in sys.argv:
        for f in figures():
            print(f, f"{f.stat().st_size / 1024:.0f} KB")
    else:
        main()
