"""Attributes read off the sample photos, and off synthetic edits of them (recoloured, painted)."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from skimage.color import lab2rgb, rgb2lab

from face2emoticon import attributes as A

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def _aligned(name: str):
    import landmarks

    image = landmarks.load_image(SAMPLES / name)
    face = landmarks.detect(image)
    a = landmarks.align(image, face.points, size=256)
    return a.image, np.asarray(a.points, dtype=np.float64)


@pytest.fixture(scope="module")
def astronaut():
    return _aligned("astronaut.png")


@pytest.fixture(scope="module")
def hopper():
    return _aligned("grace_hopper.jpg")


def _shift(img: np.ndarray, mask: np.ndarray, target_lab) -> np.ndarray:
    """Move the masked pixels' median CIELAB to ``target_lab``, keeping their shading."""
    lab = rgb2lab(img / 255.0)
    lab[mask] += np.asarray(target_lab) - np.median(lab[mask], axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # out-of-gamut colours are clipped, as intended
        return (np.clip(lab2rgb(lab), 0, 1) * 255).round().astype(np.uint8)


def _hair_mask(img, pts):
    lab = rgb2lab(A.white_balance(img)[0])
    skin = np.median(lab[A.photo_regions(pts, img.shape[:2])["skin"]], axis=0)
    person = A.person_mask(img) > 0.5
    m = person & ~A._face_oval(pts, img.shape[:2], 0.04) & ~A._skin_like(lab, skin)
    m[int(pts[57, 1]):] = False
    return m


def test_astronaut(astronaut):
    a = A.estimate(*astronaut)
    assert a.skin <= 1, a.evidence["skin"]
    assert a.hair_colour in ("dark-brown", "brown"), a.evidence["hair_colour"]
    assert a.hair_length == "short", a.evidence["hair_length"]
    assert not a.glasses, a.evidence["glasses"]
    assert not a.beard, a.evidence["beard"]
    assert set(a.evidence) >= set(A.FIELDS)
    assert all(0.0 <= a.confidence(f) <= 1.0 for f in A.FIELDS)


def test_grace_hopper(hopper):
    a = A.estimate(*hopper)
    assert a.skin <= 1, a.evidence["skin"]
    assert a.hair_colour == "grey", a.evidence["hair_colour"]
    assert a.hair_length != "bald"
    assert a.glasses, a.evidence["glasses"]
    assert not a.beard, a.evidence["beard"]


@pytest.mark.parametrize("cast", [(1.12, 1.0, 0.8), (0.7, 0.7, 0.7)], ids=["warm-light", "under-exposed"])
def test_light_skin_stays_light_under_casts(astronaut, cast):
    img, pts = astronaut
    tinted = np.clip(img * np.asarray(cast), 0, 255).astype(np.uint8)
    assert A.estimate(tinted, pts).skin <= 1


def test_skin_estimate_follows_recolouring(astronaut):
    img, pts = astronaut
    lab = rgb2lab(img / 255.0)
    skin = np.median(lab[A.photo_regions(pts, img.shape[:2])["skin"]], axis=0)
    face = A._face_oval(pts, img.shape[:2], 0.0) & A._skin_like(lab, skin)
    tones = [A.estimate(_shift(img, face, (L, 18, 30)), pts).skin for L in (78, 62, 47, 33, 20)]
    assert tones == sorted(tones), tones
    assert tones[0] <= 1 and tones[-1] >= 3, tones


@pytest.mark.parametrize("target,expected", [((72, 3, 38), {"blond"}), ((80, 1, 2), {"grey"}),
                                             ((10, 3, 3), {"black", "dark-brown"}), ((42, 50, 48), {"red", "auburn"})])
def test_hair_colour_follows_recolouring(astronaut, target, expected):
    img, pts = astronaut
    got = A.estimate(_shift(img, _hair_mask(img, pts), target), pts)
    assert got.hair_colour in expected, got.evidence["hair_colour"]


def test_painted_glasses_and_beard(astronaut):
    img, pts = astronaut
    im = Image.fromarray(img.copy())
    d = ImageDraw.Draw(im)
    eo = float(np.linalg.norm(pts[42:48].mean(0) - pts[36:42].mean(0)))
    for sl in (slice(36, 42), slice(42, 48)):
        c = pts[sl].mean(0)
        d.ellipse((c[0] - 0.45 * eo, c[1] - 0.3 * eo, c[0] + 0.45 * eo, c[1] + 0.3 * eo), outline=(25, 25, 25), width=3)
    l, r = pts[36:42].mean(0) + [0.45 * eo, 0], pts[42:48].mean(0) - [0.45 * eo, 0]
    d.line((l[0], l[1] - 0.1 * eo, r[0], r[1] - 0.1 * eo), fill=(25, 25, 25), width=3)
    with_glasses = A.estimate(np.asarray(im), pts)
    assert with_glasses.glasses and not with_glasses.beard
    # A dark, textured beard over the chin and upper lip.
    rng = np.random.default_rng(0)
    chin = A._polygon(img.shape[:2], np.concatenate([pts[3:14], pts[[54, 55, 56, 57, 58, 59, 48]]]))
    lip = A._polygon(img.shape[:2], pts[[31, 32, 33, 34, 35, 54, 53, 52, 51, 50, 49, 48]])
    bearded = img.copy()
    hair = np.array([60, 40, 30]) + rng.normal(0, 18, size=(*img.shape[:2], 1))
    bearded[chin | lip] = np.clip(hair, 0, 255).astype(np.uint8)[chin | lip]
    assert A.estimate(bearded, pts).beard


def test_overrides(astronaut):
    a = A.estimate(*astronaut)
    b = a.replace(skin=4, glasses=True, hair_colour=None)
    assert (b.skin, b.glasses, b.hair_colour) == (4, True, a.hair_colour)
    assert set(b.overridden) == {"skin", "glasses"}
    assert b.identity(seed=3).skin == 4
    with pytest.raises(ValueError):
        a.replace(hair_colour="green")
    with pytest.raises(ValueError):
        a.replace(height=2)
