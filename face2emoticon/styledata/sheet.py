"""Contact sheets: a grid of images with optional row and column labels, for docs/ and run logs."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


def contact_sheet(rows: list[list[np.ndarray | None]], *, cell: int = 64, row_labels: list[str] | None = None,
                  col_labels: list[str] | None = None, pad: int = 2, label_width: int = 0) -> Image.Image:
    """A grid image of ``rows`` (each image ``uint8 [H,W,3]``, resized to ``cell``; ``None`` leaves a gap).

    Labels use PIL's built-in bitmap font (no system fonts needed).
    """
    n_cols = max(len(r) for r in rows)
    top = 14 if col_labels else 0
    left = label_width if row_labels else 0
    w = left + n_cols * (cell + pad) + pad
    h = top + len(rows) * (cell + pad) + pad
    sheet = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(sheet)
    for j, name in enumerate(col_labels or []):
        draw.text((left + pad + j * (cell + pad), 1), name[: max(1, cell // 6)], fill="black")
    for i, row in enumerate(rows):
        y = top + pad + i * (cell + pad)
        if row_labels:
            draw.text((2, y + cell // 2 - 5), row_labels[i][: max(1, label_width // 6)], fill="black")
        for j, img in enumerate(row):
            if img is None:
                continue
            tile = Image.fromarray(np.asarray(img, dtype=np.uint8)).convert("RGB").resize((cell, cell), Image.LANCZOS)
            sheet.paste(tile, (left + pad + j * (cell + pad), y))
    return sheet
