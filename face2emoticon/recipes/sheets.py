"""Contact sheets of the style data for the docs: ``python -m face2emoticon.recipes.sheets --data data``."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from face2emoticon.styledata.people import EXPRESSIONS
from face2emoticon.styledata.sheet import contact_sheet
from face2emoticon.styles import STYLE_NAMES


def _load(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def data_sheets(data: Path, docs: Path, *, identities: tuple[int, ...] = (0, 1, 2, 3, 5, 7, 11, 13),
                expression_identity: int = 3) -> list[Path]:
    """Write ``styles.png`` (identities x styles) and ``styles_expressions.png`` (styles x expressions)."""
    docs.mkdir(parents=True, exist_ok=True)
    rows = [[_load(data / f"styles/{s}/{i:05d}.png") for s in STYLE_NAMES] for i in identities]
    a = docs / "styles.png"
    contact_sheet(rows, cell=80, col_labels=list(STYLE_NAMES)).quantize(256).save(a, optimize=True)
    rows = [[_load(data / f"pairs/{s}/{expression_identity:05d}_{e}.png") for e in EXPRESSIONS] for s in STYLE_NAMES]
    b = docs / "styles_expressions.png"
    contact_sheet(rows, cell=64, col_labels=list(EXPRESSIONS), row_labels=list(STYLE_NAMES),
                  label_width=66).quantize(256).save(b, optimize=True)
    return [a, b]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", type=Path, default=Path("data"))
    p.add_argument("--docs", type=Path, default=Path("docs"))
    args = p.parse_args()
    for f in data_sheets(args.data, args.docs):
        print(f)


if __name__ == "__main__":
    main()
