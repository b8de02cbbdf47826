"""The committed per-style landmark templates: shape, range, and face-part order."""
from __future__ import annotations

import numpy as np
import pytest

from face2emoticon.style_landmarks import (
    fit_template,
    load_templates,
    regions,
    style_points,
)
from face2emoticon.styles import STYLE_NAMES


@pytest.mark.parametrize("style", STYLE_NAMES)
def test_template_sanity(style):
    t = load_templates()[style]
    assert t.shape == (68, 2) and t.dtype == np.float32
    assert (t >= 0).all() and (t <= 1).all()
    eye_r, eye_l, mouth, brow_r = t[36:42].mean(0), t[42:48].mean(0), t[48:68].mean(0), t[17:22].mean(0)
    assert eye_r[0] < eye_l[0]  # subject's right eye is on the image's left
    assert max(eye_r[1], eye_l[1]) < t[30, 1] < mouth[1]  # eyes above the nose tip above the mouth
    assert brow_r[1] < eye_r[1]
    assert t[48, 0] < t[54, 0]  # mouth corners left to right
    px = style_points(style, 200)
    np.testing.assert_allclose(px, t * 200, rtol=1e-6)


def test_unknown_style_has_no_points():
    assert style_points("no-such-style", 64) is None


def test_regions_and_fit_on_a_synthetic_change_map():
    cmap = np.zeros((100, 100), np.float32)
    cmap[30:40, 20:40] = 1  # right eye + brow (image left)
    cmap[30:40, 60:80] = 1
    cmap[70:80, 35:65] = 1  # mouth
    boxes = regions(cmap)
    assert np.allclose((boxes["eye_r"][0] + boxes["eye_r"][2]) / 2, 0.295, atol=0.02)
    assert np.allclose((boxes["mouth"][1] + boxes["mouth"][3]) / 2, 0.745, atol=0.02)
    mean_face = load_templates()["avataaars"]
    t = fit_template(boxes, mean_face)
    assert abs(t[48:68, 1].mean() - 0.745) < 0.02 and t[36:42, 0].mean() < t[42:48, 0].mean()
