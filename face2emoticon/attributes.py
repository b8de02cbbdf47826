"""Read a person's drawable attributes off a face photo: skin tone, hair colour and length, glasses, beard.

These are the attributes of :class:`~face2emoticon.styledata.people.Identity`, the ones every
default style can draw, so :func:`estimate` turns a photo into the same parametric person the style
data was rendered from. Each attribute comes with its evidence (the measured numbers) and a
confidence in [0, 1] (how far the measure is from the decision threshold; 0 = on the fence).
The user can override any of them (:meth:`Attributes.replace`).

How each one is read, from an aligned face crop ``uint8 [S,S,3]`` and its 68 iBUG landmarks:

* **exposure / white balance**: the brightest near-neutral pixels of the crop (a shirt collar, a
  wall, the eye whites) are taken as white; the crop is scaled per channel so they become neutral
  and bright (gains capped at 1.6). Without such pixels nothing is changed.
* **skin**: median CIELAB of the two cheek polygons (:func:`face2emoticon.identity.photo_regions`).
  The tone is chosen by lightness ``L*`` alone, which a warm or cool cast hardly moves: photographed
  skin reads about 12 ``L*`` below the flat vector palette, so the palette's ``L*`` minus 12 are the
  class centres.
* **hair**: the person mask (MediaPipe selfie segmentation, bundled with mediapipe) outside the face
  oval, minus skin-coloured pixels, in two zones: beside the temples and above the forehead. The
  temples win when they hold enough hair pixels (hats cover the top, rarely the temples). Grey/white:
  low chroma and light; otherwise the nearest palette colour in CIELAB.
* **length**: ``bald`` when the zone above the forehead is mostly skin or background; ``long`` when
  hair-coloured person pixels reach below the mouth beside the jaw; else ``short``.
* **glasses**: a frame's bridge is a horizontal edge across the nose between the inner eye corners,
  where skin is smooth: the peak of the column-averaged vertical gradient there, relative to the skin's
  brightness, plus the same measure under each eye (the lower rims) against the cheek's texture.
* **beard**: the chin and upper-lip regions against the cheeks: a beard makes them darker (ΔL*) and
  more textured.

Accuracy, honestly: checked on the two bundled sample photos and on synthetic edits of them (skin
and hair recoloured, glasses and a beard painted on, colour casts, under-exposure); not on a labelled
photo set. Expect errors with strong coloured light, hats that hide the temples, hair tied back (reads
``short``), rimless glasses (weak edges), light stubble, and very wrinkled skin under the eyes (may
read as glasses rims). That is why the page shows the attributes and lets the user change them.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage
from skimage.color import rgb2lab

from face2emoticon.identity import photo_regions
from face2emoticon.styledata.people import (
    HAIR_COLOURS,
    HAIR_LENGTHS,
    SKIN_TONES,
    Identity,
)

log = logging.getLogger(__name__)

FIELDS = ("skin", "hair_colour", "hair_length", "glasses", "beard")
#: Photographed skin reads about this many L* below the vector palette's flat colours.
PHOTO_L_OFFSET = 12.0
GLASSES_THRESHOLD = 0.35
BEARD_THRESHOLD = 1.0
GREY_FRACTION = 0.1


def _hex_lab(h: str) -> np.ndarray:
    return rgb2lab(np.array([[[int(h[i:i + 2], 16) for i in (0, 2, 4)]]], dtype=np.float64) / 255.0)[0, 0]


SKIN_L = np.array([_hex_lab(h)[0] for h in SKIN_TONES]) - PHOTO_L_OFFSET
HAIR_LAB = {name: _hex_lab(h) for name, h in HAIR_COLOURS.items()}


@dataclass(frozen=True)
class Attributes:
    """What a photo tells about a person that every style can draw.

    ``skin``: index into ``SKIN_TONES`` (0 = lightest of 5); ``hair_colour``: a key of ``HAIR_COLOURS``;
    ``hair_length``: ``short``/``long``/``bald``; ``glasses``, ``beard``: bools. ``evidence[name]`` holds the
    measured numbers and ``confidence`` in [0,1] per attribute (not compared, not hashed);
    ``overridden`` names the attributes the user set.
    """

    skin: int
    hair_colour: str
    hair_length: str
    glasses: bool
    beard: bool
    evidence: dict = field(default_factory=dict, compare=False, hash=False, repr=False)
    overridden: tuple[str, ...] = ()

    def __post_init__(self):
        if not 0 <= int(self.skin) < len(SKIN_TONES):
            raise ValueError(f"skin must be 0..{len(SKIN_TONES) - 1}, got {self.skin}")
        if self.hair_colour not in HAIR_COLOURS:
            raise ValueError(f"hair_colour must be one of {', '.join(HAIR_COLOURS)}, got {self.hair_colour!r}")
        if self.hair_length not in HAIR_LENGTHS:
            raise ValueError(f"hair_length must be one of {', '.join(HAIR_LENGTHS)}, got {self.hair_length!r}")

    def key(self) -> tuple:
        """The attribute values (what changes a render)."""
        return tuple(getattr(self, f) for f in FIELDS)

    def values(self) -> dict:
        return {f: getattr(self, f) for f in FIELDS}

    def replace(self, **overrides) -> Attributes:
        """A copy with the given attributes set (None leaves one as read from the photo)."""
        changes = {k: v for k, v in overrides.items() if v is not None}
        unknown = set(changes) - set(FIELDS)
        if unknown:
            raise ValueError(f"unknown attribute(s) {', '.join(sorted(unknown))}; choose from {', '.join(FIELDS)}")
        if not changes:
            return self
        if "skin" in changes:
            changes["skin"] = int(changes["skin"])
        for b in ("glasses", "beard"):
            if b in changes:
                changes[b] = bool(changes[b])
        done = tuple(dict.fromkeys((*self.overridden, *changes)))
        return dataclasses.replace(self, **changes, overridden=done)

    def identity(self, *, seed: int = 0, identity_id: int = 0) -> Identity:
        """The :class:`Identity` the style renderer draws (``seed`` picks haircut and clothes)."""
        return Identity(identity_id=identity_id, seed=int(seed), **self.values())

    def confidence(self, name: str) -> float:
        return float(self.evidence.get(name, {}).get("confidence", 1.0))


# --------------------------------------------------------------------------- helpers


def _polygon(shape: tuple[int, int], pts: np.ndarray) -> np.ndarray:
    im = Image.new("L", (shape[1], shape[0]), 0)
    ImageDraw.Draw(im).polygon([tuple(map(float, p)) for p in pts], fill=1)
    return np.asarray(im, dtype=bool)


def _box(shape: tuple[int, int], x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    h, w = shape
    xs = slice(int(np.clip(round(x0), 0, w)), int(np.clip(round(x1), 0, w)))
    ys = slice(int(np.clip(round(y0), 0, h)), int(np.clip(round(y1), 0, h)))
    m[ys, xs] = True
    return m


def white_balance(img: np.ndarray) -> tuple[np.ndarray, dict]:
    """``uint8 [H,W,3]`` → ``float64 [H,W,3]`` in [0,1] with the near-neutral highlights made white.

    Returns the image and ``{"white": rgb of the reference or None, "gains": [3]}``.
    """
    f = img.astype(np.float64)
    lab = rgb2lab(f / 255.0)
    chroma = np.hypot(lab[..., 1], lab[..., 2])
    neutral = (chroma < 18) & (lab[..., 0] > 45)
    if neutral.sum() < 0.005 * neutral.size:
        return f / 255.0, {"white": None, "gains": [1.0, 1.0, 1.0]}
    lum = lab[..., 0][neutral]
    ref = f[neutral][lum >= np.quantile(lum, 0.9)].mean(0)
    gains = np.clip(ref.max() / np.maximum(ref, 1.0), 1.0, 1.6)
    gains = gains * np.clip(245.0 / max((ref * gains).max(), 1.0), 1.0, 1.6 / gains.max())
    return np.clip(f * gains / 255.0, 0, 1), {"white": ref.round().tolist(), "gains": gains.round(3).tolist()}


_SEG_LOCK = threading.Lock()
_SEG = None


def person_mask(img: np.ndarray) -> np.ndarray | None:
    """``float32 [H,W]`` in [0,1]: person vs background (MediaPipe selfie segmentation); None without it."""
    global _SEG
    try:
        import mediapipe as mp

        from landmarks.backend_mediapipe import native_stderr_to_log
    except ImportError:  # pragma: no cover - mediapipe is a dependency
        return None
    with _SEG_LOCK, native_stderr_to_log():
        if _SEG is None:
            _SEG = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
        res = _SEG.process(np.ascontiguousarray(img))
    return None if res.segmentation_mask is None else np.asarray(res.segmentation_mask, dtype=np.float32)


def _confidence(margin: float, scale: float) -> float:
    return float(np.clip(abs(margin) / scale, 0.0, 1.0))


# --------------------------------------------------------------------------- the attributes


def _skin(lab: np.ndarray, skin: np.ndarray) -> tuple[int, np.ndarray, dict]:
    med = np.median(lab[skin], axis=0)
    dist = np.abs(SKIN_L - med[0])
    order = np.argsort(dist)
    tone = int(order[0])
    margin = float(dist[order[1]] - dist[order[0]])  # 0 on a boundary
    ita = float(np.degrees(np.arctan2(med[0] - 50.0, med[2])))
    return tone, med, {"lab": med.round(1).tolist(), "ita": round(ita, 1), "confidence": _confidence(margin, 8.0)}


def _face_oval(points: np.ndarray, shape: tuple[int, int], grow: float) -> np.ndarray:
    """The jaw line closed over the brows, grown by ``grow`` × the face width around its centre."""
    jaw = points[0:17]
    brows = points[17:27][::-1]
    lift = 0.25 * (points[8, 1] - points[17:27, 1].min())
    oval = np.concatenate([jaw, brows - [0, lift]])
    c = oval.mean(0)
    return _polygon(shape, c + (1 + grow) * (oval - c))


def _skin_like(lab: np.ndarray, skin_lab: np.ndarray) -> np.ndarray:
    """``bool [H,W]``: close to the cheek colour, or the same hue and chroma in shade (ears, bald scalps)."""
    near = np.linalg.norm(lab - skin_lab, axis=-1) < 14
    hue = np.degrees(np.arctan2(lab[..., 2], lab[..., 1]))
    s_hue = np.degrees(np.arctan2(skin_lab[2], skin_lab[1]))
    s_chroma = float(np.hypot(skin_lab[1], skin_lab[2]))
    dh = np.abs((hue - s_hue + 180) % 360 - 180)
    shaded = ((dh < 20) & (np.hypot(lab[..., 1], lab[..., 2]) >= 0.6 * s_chroma)
              & (lab[..., 0] >= skin_lab[0] - 20) & (lab[..., 0] <= skin_lab[0] + 10))
    return near | shaded


def _hair_name(lab: np.ndarray) -> tuple[str, dict]:
    L, a, b = lab
    chroma = float(np.hypot(a, b))
    if L > 50 and chroma < 12:
        return "grey", {"confidence": _confidence(12 - chroma, 6.0)}
    names = [n for n in HAIR_LAB if n != "grey"]
    d = np.array([np.linalg.norm(lab - HAIR_LAB[n]) for n in names])
    order = np.argsort(d)
    return names[order[0]], {"confidence": _confidence(d[order[1]] - d[order[0]], 10.0)}


def _hair_colour(px: np.ndarray) -> tuple[str, np.ndarray, dict]:
    """Hair pixels ``[N,3]`` CIELAB → (name, representative Lab, evidence). Grey when a tenth of them are
    light and nearly colourless: thin grey hair lets skin and background through, and is rarely all grey."""
    greyish = (px[:, 0] > 55) & (np.hypot(px[:, 1], px[:, 2]) < 18)
    frac = float(greyish.mean())
    if frac > GREY_FRACTION:
        return "grey", np.median(px[greyish], axis=0), {"grey_fraction": round(frac, 3),
                                                         "confidence": _confidence(frac - GREY_FRACTION, 0.2)}
    colour = np.median(px[~greyish], axis=0)
    name, ev = _hair_name(colour)
    return name, colour, {"grey_fraction": round(frac, 3), **ev}


def _hair(lab: np.ndarray, points: np.ndarray, person: np.ndarray | None, skin_lab: np.ndarray
          ) -> tuple[str, str, dict]:
    shape = lab.shape[:2]
    face_w = float(points[16, 0] - points[0, 0])
    brow = float(points[17:27, 1].min())
    face_h = float(points[8, 1] - brow)
    # Wispy hair (grey, fine) gets low person scores: take the soft edge of the mask too.
    person = np.ones(shape, bool) if person is None else person > 0.25
    not_face = ~_face_oval(points, shape, 0.04)
    not_skin = ~_skin_like(lab, skin_lab)
    candidates = person & not_face & not_skin
    eyes_y = float(points[36:48, 1].mean())
    temples = (_box(shape, points[0, 0] - 0.25 * face_w, points[0, 0] + 0.05 * face_w, eyes_y - 0.1 * face_h,
                    points[2, 1])
               | _box(shape, points[16, 0] - 0.05 * face_w, points[16, 0] + 0.25 * face_w, eyes_y - 0.1 * face_h,
                      points[14, 1]))
    top = _box(shape, points[17, 0], points[26, 0], brow - 0.6 * face_h, brow - 0.12 * face_h)
    t_hair, top_hair = temples & candidates, top & candidates
    zone = t_hair if t_hair.sum() >= 0.08 * temples.sum() else top_hair
    ev: dict = {"temple_fraction": round(float(t_hair.sum() / max(temples.sum(), 1)), 3),
                "top_fraction": round(float(top_hair.sum() / max(top.sum(), 1)), 3)}
    # Bald: the top zone is mostly skin (scalp) or background.
    top_frac = ev["top_fraction"]
    if top_frac < 0.2 and ev["temple_fraction"] < 0.25:
        name, colour_lab, cev = (_hair_colour(lab[zone]) if zone.sum() >= 8
                                 else ("dark-brown", HAIR_LAB["dark-brown"], {"confidence": 0.0}))
        return name, "bald", {**ev, "colour_lab": np.round(colour_lab, 1).tolist(), "colour": cev,
                              "length": {"confidence": _confidence(0.2 - top_frac, 0.15)}}
    name, colour_lab, cev = _hair_colour(lab[zone])
    # Long: hair-coloured person pixels beside the jaw below the mouth.
    y0, y1 = float(points[57, 1]), float(points[8, 1] + 0.35 * face_h)
    below = (_box(shape, points[4, 0] - 0.35 * face_w, points[4, 0], y0, y1)
             | _box(shape, points[12, 0], points[12, 0] + 0.35 * face_w, y0, y1)) & person & not_face
    like_hair = np.linalg.norm(lab - colour_lab, axis=-1) < 16
    side = _box(shape, points[4, 0] - 0.35 * face_w, points[4, 0], y0, y1)
    long_frac = float((below & like_hair & not_skin).sum() / max(2 * side.sum(), 1))
    length = "long" if long_frac > 0.2 else "short"
    ev.update(colour_lab=np.round(colour_lab, 1).tolist(), colour=cev, long_fraction=round(long_frac, 3),
              length={"confidence": _confidence(long_frac - 0.2, 0.15)})
    return name, length, ev


def _edge_peak(gy: np.ndarray, x0: float, x1: float, y0: float, y1: float) -> float:
    """The largest |column-mean vertical gradient| over rows of a box: a horizontal edge across it."""
    h, w = gy.shape
    p = gy[int(np.clip(y0, 0, h)):int(np.clip(y1, 0, h)), int(np.clip(x0, 0, w)):int(np.clip(x1, 0, w))]
    return float(np.abs(p.mean(1)).max()) if p.size else 0.0


def _glasses(grey: np.ndarray, points: np.ndarray, skin_grey: float) -> tuple[bool, dict]:
    scale = 256.0 / grey.shape[0]  # the measures are tuned on a 256 px crop
    gy = ndimage.sobel(ndimage.gaussian_filter(grey, 1.0 / scale), 0) * scale
    le, re = points[36:42].mean(0), points[42:48].mean(0)
    eo = float(np.linalg.norm(re - le))
    bright = max(skin_grey, 40.0)
    yb = float(min(points[21, 1], points[22, 1]))
    bridge = _edge_peak(gy, points[39, 0] + 0.1 * eo, points[42, 0] - 0.1 * eo, yb, (le[1] + re[1]) / 2 + 0.1 * eo)
    rims = [_edge_peak(gy, e[:, 0].min(), e[:, 0].max(), e[:, 1].max() + 0.08 * eo, e[:, 1].max() + 0.5 * eo)
            for e in (points[36:42], points[42:48])]
    cheeks = [_edge_peak(gy, points[41, 0] - 0.1 * eo, points[40, 0], points[29, 1], points[30, 1] + 0.3 * eo),
              _edge_peak(gy, points[47, 0], points[46, 0] + 0.1 * eo, points[29, 1], points[30, 1] + 0.3 * eo)]
    b = bridge / bright
    r = max(0.0, min(rims) - max(cheeks)) / bright
    score = b + 0.5 * r
    return score > GLASSES_THRESHOLD, {"bridge": round(b, 3), "rims": round(r, 3), "score": round(score, 3),
                                       "confidence": _confidence(score - GLASSES_THRESHOLD, 0.2)}


def _beard(lab: np.ndarray, points: np.ndarray, skin: np.ndarray) -> tuple[bool, dict]:
    shape = lab.shape[:2]
    chin = _polygon(shape, np.concatenate([points[5:12], points[[55, 56, 57, 58, 59]]]))
    lip = _polygon(shape, points[[31, 32, 33, 34, 35, 54, 53, 52, 51, 50, 49, 48]])
    L = lab[..., 0]
    s_L, s_tex = float(np.median(L[skin])), float(L[skin].std())
    out = {}
    for name, m in (("chin", chin), ("upper_lip", lip)):
        if m.sum() < 8:
            out[name] = 0.0
            continue
        dark = max(0.0, s_L - float(np.median(L[m]))) / 12.0
        tex = max(0.0, float(L[m].std()) - s_tex) / 10.0
        out[name] = dark + 0.5 * tex
    score = max(out["chin"], 0.8 * out["upper_lip"])
    return score > BEARD_THRESHOLD, {**{k: round(v, 3) for k, v in out.items()}, "score": round(score, 3),
                                     "confidence": _confidence(score - BEARD_THRESHOLD, 0.6)}


def estimate(crop: np.ndarray, points: np.ndarray, *, person: np.ndarray | None = None,
             segment: bool = True) -> Attributes:
    """The attributes of the face in ``crop`` (``uint8 [S,S,3]``, an aligned face; ``points [68,2]`` its
    iBUG landmarks in crop pixels). ``person``: a ``[S,S]`` person mask in [0,1] if one is at hand; else
    MediaPipe's selfie segmentation makes one (``segment=False``: none, colour evidence only)."""
    crop = np.asarray(crop)
    points = np.asarray(points, dtype=np.float64)
    if crop.dtype != np.uint8 or crop.ndim != 3 or crop.shape[2] != 3:
        raise ValueError(f"crop must be uint8 [S,S,3], got {crop.dtype} {crop.shape}")
    if points.shape != (68, 2):
        raise ValueError(f"points must be [68,2], got {points.shape}")
    if person is None and segment:
        person = person_mask(crop)
    balanced, wb = white_balance(crop)
    lab = rgb2lab(balanced)
    skin_mask = photo_regions(points, crop.shape[:2])["skin"]
    if skin_mask.sum() < 8:
        raise ValueError("the cheek regions are empty: are the landmarks on this crop?")
    tone, skin_lab, skin_ev = _skin(lab, skin_mask)
    hair_colour, hair_length, hair_ev = _hair(lab, points, person, skin_lab)
    grey = balanced.mean(-1) * 255.0
    glasses, glasses_ev = _glasses(grey, points, float(np.median(grey[skin_mask])))
    beard, beard_ev = _beard(lab, points, skin_mask)
    evidence = {
        "white_balance": wb,
        "skin": skin_ev,
        "hair_colour": {"lab": hair_ev.get("colour_lab"), "temple_fraction": hair_ev["temple_fraction"],
                        "top_fraction": hair_ev["top_fraction"], **hair_ev["colour"]},
        "hair_length": {"top_fraction": hair_ev["top_fraction"], "long_fraction": hair_ev.get("long_fraction"),
                        **hair_ev["length"]},
        "glasses": glasses_ev,
        "beard": beard_ev,
    }
    return Attributes(skin=tone, hair_colour=hair_colour, hair_length=hair_length, glasses=glasses, beard=beard,
                      evidence=evidence)
