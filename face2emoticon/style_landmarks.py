"""Where each style draws the eyes, brows and mouth: a 68-point iBUG template per style.

The animation stage moves a still's landmarks, so a styled still needs landmarks that sit on *its*
face parts, not the photo's (cartoon faces have other proportions, and some styles draw the head
turned). Landmark detectors fail on cartoons; the style data tells exactly where the parts are:

* DiceBear styles: the same identity rendered neutral and with each expression differs only in the
  face parts, so the pixels that change (summed over identities and expressions) mark the eyes with
  their brows and the mouth;
* the emoji style draws every person with the same face, and a different face emoji per expression:
  across people (skin tones, hair) its eyes are the dark blobs that never change; the rest of the
  template follows the mean face's proportions from the eyes (:func:`fit_from_eyes`).

The change map is split into two eye regions (left, right) and a mouth region; a mean face
(68 points in face units, from the expression prior's AU model) is mapped onto them by the affine map
taking its eye+brow centres and mouth centre to the measured ones, then the eyes and the mouth are
rescaled to the measured widths. Points are stored in unit coordinates of the square still
(``x, y`` in [0,1], the render's own framing) in ``style_landmarks.json`` beside this file.

Rebuild (needs the style data, ``make data``)::

    python -m face2emoticon.style_landmarks --data data --out face2emoticon/style_landmarks.json
"""
from __future__ import annotations

import argparse
import json
import logging
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

TEMPLATE_FILE = Path(__file__).resolve().parent / "style_landmarks.json"
EXPRESSIONS = ("happy", "sad", "angry", "surprised", "fearful", "disgusted")
_EYE_R, _EYE_L, _BROW_R, _BROW_L, _MOUTH = (slice(36, 42), slice(42, 48), slice(17, 22), slice(22, 27),
                                             slice(48, 68))


@lru_cache(maxsize=1)
def load_templates(path: str | None = None) -> dict[str, np.ndarray]:
    """``{style: float32 [68,2]}`` in unit coordinates of the square still."""
    data = json.loads(Path(path or TEMPLATE_FILE).read_text())
    return {s: np.asarray(v, dtype=np.float32) for s, v in data["styles"].items()}


def style_points(style: str, size: int) -> np.ndarray | None:
    """``float32 [68,2]`` pixel landmarks of a ``size`` px still of ``style``; None for a style without one."""
    t = load_templates().get(style)
    return None if t is None else (t * size).astype(np.float32)


def _load(path: Path, size: int) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB").resize((size, size), Image.Resampling.BILINEAR),
                      dtype=np.float32)


def change_map(pairs_dir: Path, style: str, *, size: int = 128, identities: int = 30, threshold: float = 40.0
               ) -> np.ndarray:
    """``float32 [size,size]`` in [0,1]: how often a pixel changes between neutral and an expression."""
    folder = pairs_dir / style
    ids = sorted({p.name.split("_")[0] for p in folder.glob("*_neutral.png")})[:identities]
    if not ids:
        raise FileNotFoundError(f"no paired renders in {folder}; render the style data first (make data)")
    acc = np.zeros((size, size), np.float32)
    for i in ids:
        n = _load(folder / f"{i}_neutral.png", size)
        for e in EXPRESSIONS:
            acc += np.abs(_load(folder / f"{i}_{e}.png", size) - n).sum(-1) > threshold
    return acc / (len(ids) * len(EXPRESSIONS))


def constant_dark_map(styles_dir: Path, style: str, *, size: int = 128, identities: int = 200) -> np.ndarray:
    """``float32 [size,size]`` in [0,1]: how much darker than its surroundings a pixel is on average over
    people, inside the face (the pixels whose colour follows the person): a shared face's eyes and mouth."""
    files = sorted((styles_dir / style).glob("*.png"))[:identities]
    if not files:
        raise FileNotFoundError(f"no renders in {styles_dir / style}; render the style data first (make data)")
    stack = np.stack([_load(f, size).mean(-1) for f in files])
    varies = stack.std(0)
    # The face: pixels whose colour varies with the person (skin); its features are dark holes in it.
    face = varies > 20
    from scipy import ndimage

    hull = ndimage.binary_closing(face, iterations=max(2, size // 24))
    hull = ndimage.binary_fill_holes(hull)
    # Away from the face's outline (hair and ear edges are dark too, and move with the person).
    hull = ndimage.binary_erosion(hull, iterations=max(2, size // 10))
    mean = stack.mean(0)
    k = max(3, size // 12) | 1
    return np.clip((ndimage.median_filter(mean, size=k) - mean) / 40.0, 0, 1) * hull


def _weighted_box(w: np.ndarray, ys: np.ndarray, xs: np.ndarray, lo: float = 0.05, hi: float = 0.95):
    def q(v, p):
        o = np.argsort(v)
        c = np.cumsum(w[o])
        return float(v[o][np.searchsorted(c, p * c[-1])])

    return np.array([q(xs, lo), q(ys, lo), q(xs, hi), q(ys, hi)])


def regions(cmap: np.ndarray, *, floor: float = 0.08) -> dict[str, np.ndarray]:
    """Boxes ``(x0, y0, x1, y1)`` in unit coordinates of the right eye (image left), left eye and mouth."""
    size = cmap.shape[0]
    ys, xs = np.nonzero(cmap > floor)
    w = cmap[ys, xs].astype(np.float64)
    if len(ys) < 8:
        raise ValueError("no face parts found in the change map")
    # Two clusters in y (eyes above, mouth below): 1-D weighted 2-means.
    split = float(np.average(ys, weights=w))
    for _ in range(20):
        up = ys < split
        if up.all() or not up.any():
            break
        c0, c1 = np.average(ys[up], weights=w[up]), np.average(ys[~up], weights=w[~up])
        split = (c0 + c1) / 2
    up = ys < split
    mouth = _weighted_box(w[~up], ys[~up], xs[~up])
    ex, ey, ew = xs[up], ys[up], w[up]
    mid = float(np.average(ex, weights=ew))
    for _ in range(20):
        left = ex < mid
        if left.all() or not left.any():
            break
        mid = (np.average(ex[left], weights=ew[left]) + np.average(ex[~left], weights=ew[~left])) / 2
    left = ex < mid
    eye_r = _weighted_box(ew[left], ey[left], ex[left])
    eye_l = _weighted_box(ew[~left], ey[~left], ex[~left])
    return {k: v / size for k, v in (("eye_r", eye_r), ("eye_l", eye_l), ("mouth", mouth))}


def _affine(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    a = np.c_[src, np.ones(len(src))]
    m, *_ = np.linalg.lstsq(a, dst, rcond=None)
    return m  # [3,2]


def _rescale(pts: np.ndarray, width: float) -> np.ndarray:
    c = pts.mean(0)
    cur = max(float(np.ptp(pts[:, 0])), 1e-6)
    return c + (pts - c) * (width / cur)


def fit_template(boxes: dict[str, np.ndarray], mean_face: np.ndarray, *, brows_move: bool = True) -> np.ndarray:
    """``float32 [68,2]`` unit coordinates: ``mean_face [68,2]`` mapped onto the measured boxes."""
    mf = np.asarray(mean_face, np.float64)
    centre = {k: (b[:2] + b[2:]) / 2 for k, b in boxes.items()}

    def eye_src(eye, brow):
        return np.concatenate([mf[eye], mf[brow]]).mean(0) if brows_move else mf[eye].mean(0)

    src = np.stack([eye_src(_EYE_R, _BROW_R), eye_src(_EYE_L, _BROW_L), mf[_MOUTH].mean(0)])
    dst = np.stack([centre["eye_r"], centre["eye_l"], centre["mouth"]])
    m = _affine(src, dst)
    out = np.c_[mf, np.ones(68)] @ m
    for eye, brow, key in ((_EYE_R, _BROW_R, "eye_r"), (_EYE_L, _BROW_L, "eye_l")):
        b = boxes[key]
        bw, bh = b[2] - b[0], b[3] - b[1]
        cx = (b[0] + b[2]) / 2
        if brows_move:  # the box holds the brow (top third) and the eye (bottom half)
            eye_pts = _rescale(out[eye], 0.8 * bw)
            eye_pts += [cx, b[1] + 0.68 * bh] - eye_pts.mean(0)
            brow_pts = _rescale(out[brow], 0.95 * bw)
            brow_pts += [cx, b[1] + 0.15 * bh] - brow_pts.mean(0)
            out[brow] = brow_pts
        else:
            eye_pts = _rescale(out[eye], 0.9 * bw)
            eye_pts += [cx, (b[1] + b[3]) / 2] - eye_pts.mean(0)
            out[brow] += eye_pts.mean(0) - out[eye].mean(0)
        out[eye] = eye_pts
    b = boxes["mouth"]
    mouth = _rescale(out[_MOUTH], 0.9 * (b[2] - b[0]))
    out[_MOUTH] = mouth + ((b[:2] + b[2:]) / 2 - mouth.mean(0))
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def eye_blobs(dmap: np.ndarray, *, floor: float = 0.5) -> np.ndarray:
    """``[2,2]`` unit-coordinate centres of the two largest blobs of ``dmap > floor`` level with each other
    (right eye, image left, first): a shared face's eyes, its most constant dark parts."""
    from scipy import ndimage

    lab, n = ndimage.label(dmap > floor)
    if n < 2:
        raise ValueError("fewer than two dark blobs: no eyes found")
    sizes = ndimage.sum(np.ones_like(dmap), lab, index=range(1, n + 1))
    centres = np.array(ndimage.center_of_mass(dmap, lab, index=range(1, n + 1)))[:, ::-1]  # (x, y)
    order = np.argsort(sizes)[::-1]
    best = None
    for i in order[:6]:
        for j in order[:6]:
            if i < j and abs(centres[i, 1] - centres[j, 1]) < 0.05 * dmap.shape[0]:
                score = sizes[i] + sizes[j]
                if best is None or score > best[0]:
                    best = (score, i, j)
    if best is None:
        raise ValueError("no pair of dark blobs level with each other: no eyes found")
    pair = centres[[best[1], best[2]]]
    return pair[np.argsort(pair[:, 0])] / dmap.shape[0]


def fit_from_eyes(eyes: np.ndarray, mean_face: np.ndarray) -> np.ndarray:
    """``float32 [68,2]``: ``mean_face`` moved, turned and scaled so its eye centres land on ``eyes [2,2]``
    (the rest, mouth included, keeps the mean face's proportions)."""
    mf = np.asarray(mean_face, np.float64)
    src = np.stack([mf[_EYE_R].mean(0), mf[_EYE_L].mean(0)])
    (a, b), (c, d) = src, np.asarray(eyes, np.float64)
    vs, vd = b - a, d - c
    z = complex(*vd) / complex(*vs)  # rotation and scale as one complex number
    pts = (mf[:, 0] - a[0]) + 1j * (mf[:, 1] - a[1])
    moved = pts * z + complex(*c)
    return np.clip(np.c_[moved.real, moved.imag], 0.0, 1.0).astype(np.float32)


def build(data: str | os.PathLike, mean_face: np.ndarray, *, styles: tuple[str, ...] | None = None,
          size: int = 128) -> dict[str, np.ndarray]:
    """Templates ``{style: float32 [68,2]}`` measured on the style data in ``data`` (``pairs/``, ``styles/``)."""
    from face2emoticon.styles import STYLES

    data = Path(data)
    out = {}
    for st in STYLES:
        if styles and st.name not in styles:
            continue
        if st.kind == "emoji":
            out[st.name] = fit_from_eyes(eye_blobs(constant_dark_map(data / "styles", st.name, size=size)),
                                         mean_face)
        else:
            cmap = change_map(data / "pairs", st.name, size=size)
            out[st.name] = fit_template(regions(cmap, floor=0.1 * float(cmap.max())), mean_face)
        log.info("%s: eyes %s / %s, mouth %s", st.name, out[st.name][_EYE_R].mean(0).round(3),
                 out[st.name][_EYE_L].mean(0).round(3), out[st.name][_MOUTH].mean(0).round(3))
    return out


def save(templates: dict[str, np.ndarray], path: str | os.PathLike = TEMPLATE_FILE) -> Path:
    body = {"layout": "iBUG 68, unit coordinates (x, y) of the square still",
            "made_by": "python -m face2emoticon.style_landmarks",
            "styles": {s: np.round(t, 4).tolist() for s, t in templates.items()}}
    Path(path).write_text(json.dumps(body) + "\n")
    load_templates.cache_clear()
    return Path(path)


def draw(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``uint8 [H,W,3]`` with ``points [68,2]`` (pixels) drawn: eyes green, brows blue, mouth red, rest white."""
    from PIL import ImageDraw

    im = Image.fromarray(image)
    d = ImageDraw.Draw(im)
    r = max(1.0, image.shape[0] / 128)
    for i, (x, y) in enumerate(np.asarray(points)):
        c = (40, 200, 60) if 36 <= i < 48 else (40, 90, 230) if 17 <= i < 27 else (
            230, 40, 40) if i >= 48 else (255, 255, 255)
        d.ellipse((x - r, y - r, x + r, y + r), fill=c, outline=(0, 0, 0))
    return np.asarray(im)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Measure each style's 68-point landmark template on the style data.")
    p.add_argument("--data", default="data", help="the style data folder (make data)")
    p.add_argument("--out", default=str(TEMPLATE_FILE))
    p.add_argument("--mean-face", default=str(Path(__file__).resolve().parents[1] / "video_gen" / "data"
                                              / "au_basis68.npz"),
                   help="an .npz with 'neutral' [68,2]: the mean face (default: the expression prior's)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    mean_face = np.load(args.mean_face)["neutral"]
    print(save(build(args.data, mean_face), args.out))


if __name__ == "__main__":
    main()
