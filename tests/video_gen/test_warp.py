import cv2
import numpy as np
import pytest
from vg_helpers import face_points

from video_gen.eyes import EyeLids
from video_gen.mouth import MouthFill, lip_gap
from video_gen.warp import Warper, WarpOptions, tps_eval, tps_fit


@pytest.mark.parametrize("method", ["affine", "tps"])
def test_identical_landmarks_return_the_image_unchanged(face64, method):
    img, pts = face64
    w = Warper(img, pts, options=WarpOptions(method=method))
    out = w.warp(pts)
    assert out.dtype == np.uint8 and out.shape == img.shape
    assert np.array_equal(out, img)


def test_rgba_is_warped_with_its_alpha(face64):
    img, pts = face64
    rgba = np.dstack([img, np.full(img.shape[:2], 200, np.uint8)])
    out = Warper(rgba, pts).warp(pts + [1.0, 0.0])
    assert out.shape == rgba.shape


def test_grid_moves_where_the_landmarks_go():
    """A synthetic grid: shift the face's points by +3 px in x; grid lines inside the face follow."""
    size = 96
    img = np.full((size, size, 3), 255, np.uint8)
    img[:, ::8] = 0  # vertical lines every 8 px
    pts = face_points(size)
    new = pts + [3.0, 0.0]
    out = Warper(img, pts, options=WarpOptions(halo=False, mouth=False, eyes=False)).warp(new)
    # Sample a row through the nose (well inside the hull): dark columns must be shifted by 3.
    y = int(pts[30, 1])
    x0, x1 = int(pts[31, 0]) - 4, int(pts[35, 0]) + 4
    before = np.nonzero(img[y, x0:x1, 0] < 128)[0]
    after = np.nonzero(out[y, x0 + 3:x1 + 3, 0] < 128)[0]
    assert len(before) and np.array_equal(before, after)
    # Far outside the face (image corners) nothing moves.
    assert np.array_equal(out[:4, :4], img[:4, :4])
    assert np.array_equal(out[-4:, -4:], img[-4:, -4:])


def test_pixels_outside_the_face_hull_stay_put(face64):
    img, pts = face64
    new = pts.copy()
    new[48:68, 1] += 2.0  # mouth only
    out = Warper(img, pts, options=WarpOptions(mouth=False)).warp(new)
    hull = cv2.convexHull(pts.astype(np.float32)).reshape(-1, 2)
    mask = np.zeros(img.shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, np.round(hull).astype(np.int32), 1)
    outside = cv2.dilate(mask, np.ones((5, 5), np.uint8)) == 0
    assert np.array_equal(out[outside], img[outside])
    assert not np.array_equal(out, img)


def test_tps_interpolates_its_control_points():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 50, (20, 2))
    dst = src + rng.normal(0, 2, src.shape)
    p = tps_fit(src, dst)
    assert np.allclose(tps_eval(p, src, src), dst, atol=1e-3)


def test_mouth_fill_appears_only_when_the_lips_part(face64):
    img, pts = face64
    fill = MouthFill(img, pts)
    assert fill.strength(pts) == 0
    assert fill.apply(img, pts) is img  # closed: untouched
    opened = pts.copy()
    opened[[65, 66, 67], 1] += 6.0
    opened[[56, 57, 58], 1] += 6.0
    assert lip_gap(opened) > lip_gap(pts)
    assert fill.strength(opened) == pytest.approx(1.0)
    out = Warper(img, pts).warp(opened)
    plain = Warper(img, pts, options=WarpOptions(mouth=False)).warp(opened)
    inner = np.zeros(img.shape[:2], np.uint8)
    cv2.fillPoly(inner, [np.round(opened[60:68]).astype(np.int32)], 1)
    diff = np.abs(out.astype(int) - plain.astype(int)).sum(-1)
    assert diff[inner > 0].mean() > 20  # painted inside the opening
    far = cv2.dilate(inner, np.ones((5, 5), np.uint8)) == 0
    assert diff[far].max() == 0  # and nowhere else


def test_closing_eyes_do_not_smear_dark_lashes_over_the_lid():
    """Skin-coloured face with dark eyes and a dark lash band: after closing, the area the open eye
    covered (above the closed lash line) must be skin-coloured."""
    size = 256
    pts = face_points(size)
    skin = np.array([210, 170, 150], np.uint8)
    img = np.empty((size, size, 3), np.uint8)
    img[:] = skin
    for eye in (slice(36, 42), slice(42, 48)):
        poly = np.round(pts[eye]).astype(np.int32)
        cv2.fillPoly(img, [poly], (30, 30, 40))
        cv2.polylines(img, [poly[:4] - [0, 2]], False, (10, 10, 10), 4)  # lashes / crease just above the lid
    closed = pts.copy()
    for up, lo in ((37, 41), (38, 40), (43, 47), (44, 46)):
        closed[up] = closed[lo] - [0, 0.3]
    out = Warper(img, pts, options=WarpOptions(mouth=False)).warp(closed)
    plain = Warper(img, pts, options=WarpOptions(mouth=False, eyes=False)).warp(closed)
    lids = EyeLids(img, pts)
    assert lids.closure(closed, "right") > 0.9
    region = np.zeros((size, size), np.uint8)
    for eye in (slice(36, 42), slice(42, 48)):
        cv2.fillPoly(region, [np.round(pts[eye]).astype(np.int32)], 1)
    line = np.zeros((size, size), np.uint8)
    for eye in ([36, 41, 40, 39], [42, 47, 46, 45]):
        cv2.polylines(line, [np.round(closed[eye]).astype(np.int32)], False, 1, 1)
    region = (region > 0) & (cv2.dilate(line, np.ones((7, 7), np.uint8)) == 0)
    assert region.sum() > 20
    dark = lambda im: (np.abs(im.astype(int) - skin.astype(int)).sum(-1) > 120)
    assert dark(plain)[region].mean() > 0.25  # plain warp: stretched lashes / squashed eye
    assert dark(out)[region].mean() < 0.05  # with lids: skin
