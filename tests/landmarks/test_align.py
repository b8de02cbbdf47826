import numpy as np
import pytest

from landmarks import AlignTransform, align, detect, paste_back
from landmarks.align import feather_mask, ffhq_quad


@pytest.mark.parametrize("size", [64, 256, 1024])
def test_align_round_trip_points(astronaut, astronaut_face, size):
    a = align(astronaut, astronaut_face.points, size=size)
    assert a.image.shape == (size, size, 3) and a.image.dtype == np.uint8
    assert a.points.shape == (68, 2)
    back = a.transform.inverse().apply(a.points)
    assert np.abs(back - astronaut_face.points).max() < 0.5
    # arbitrary points too, and the inverse of the inverse is the transform
    pts = np.random.default_rng(0).uniform(0, 512, (100, 2))
    np.testing.assert_allclose(a.transform.inverse().apply(a.transform.apply(pts)), pts, atol=0.01)
    np.testing.assert_allclose(a.transform.inverse().inverse().matrix, a.transform.matrix, atol=1e-9)
    assert a.transform.source_size == (512, 512) and a.transform.target_size == (size, size)


def test_ffhq_geometry(astronaut_face):
    a_pts = align(np.zeros((512, 512, 3), np.uint8), astronaut_face.points, size=256).points
    eyes_r, eyes_l = a_pts[36:42].mean(0), a_pts[42:48].mean(0)
    # FFHQ puts the eyes level, symmetric about the centre, in the upper half
    assert abs(eyes_r[1] - eyes_l[1]) < 1.0
    assert abs((eyes_r[0] + eyes_l[0]) / 2 - 127.5) < 3.0
    assert 80 < eyes_r[1] < 128 and eyes_r[0] < eyes_l[0]
    assert a_pts[48:68, 1].mean() > 150
    quad = ffhq_quad(astronaut_face.points)
    sides = np.linalg.norm(np.roll(quad, -1, 0) - quad, axis=1)
    np.testing.assert_allclose(sides, sides[0], rtol=1e-9)  # a square


def test_crop_content_matches_its_landmarks(astronaut, astronaut_face):
    a = align(astronaut, astronaut_face.points, size=256)
    redetected = detect(a.image).points
    nme = np.linalg.norm(redetected - a.points, axis=1).mean() / np.linalg.norm(a.points[45] - a.points[36])
    assert nme < 0.05


def test_size_limits(astronaut, astronaut_face):
    for bad in (63, 1025):
        with pytest.raises(ValueError, match="between 64 and 1024"):
            align(astronaut, astronaut_face.points, size=bad)
    with pytest.raises(ValueError, match="68,2"):
        align(astronaut, astronaut_face.points[:5])


def test_padding_has_no_hard_border(astronaut, astronaut_face):
    # cut the photo right through the face so the FFHQ square leaves it on the left and top
    x0, y0 = 200, 110
    part = np.ascontiguousarray(astronaut[y0:, x0:])
    pts = astronaut_face.points - [x0, y0]
    a = align(part, pts, size=256)
    img = a.image.astype(np.float32)
    # where the photo's left edge lands in the crop
    edge_x = round(a.transform.apply(np.array([[-0.5, 300.0]]))[0, 0])
    assert 20 < edge_x < 200
    jump = np.abs(img[:, edge_x] - img[:, edge_x - 1]).mean()
    typical = np.abs(np.diff(img, axis=1)).mean()
    assert jump < 2.5 * typical
    # no black fill anywhere in the padded part
    assert img[:, : edge_x - 2].reshape(-1, 3).sum(1).min() > 30
    hard = align(part, pts, size=256, pad_blur=False).image.astype(np.float32)
    assert hard[:, : edge_x - 2].std() > img[:, : edge_x - 2].std()  # the blur/fade softened the mirror copy


def test_paste_back_unmodified_crop_reproduces_face(astronaut, astronaut_face):
    a = align(astronaut, astronaut_face.points, size=512)  # upsampling crop: the round trip loses little
    out = paste_back(a.image, astronaut, a.transform)
    assert out.shape == astronaut.shape and out.dtype == np.uint8
    x0, y0, x1, y1 = (int(v) for v in astronaut_face.box)
    diff = np.abs(out[y0:y1, x0:x1].astype(int) - astronaut[y0:y1, x0:x1])
    assert diff.mean() < 1.5 and np.percentile(diff, 99) < 12
    # outside the crop's footprint nothing changes
    corners = a.transform.inverse().apply(np.array([[0, 0], [0, 511], [511, 511], [511, 0]], float))
    far_y = int(corners[:, 1].max()) + 3
    if far_y < astronaut.shape[0]:
        np.testing.assert_array_equal(out[far_y:], astronaut[far_y:])


def test_paste_back_feathered_and_resized(astronaut, astronaut_face):
    a = align(astronaut, astronaut_face.points, size=256)
    red = np.zeros((128, 128, 3), np.uint8)
    red[..., 0] = 255
    out = paste_back(red, astronaut, a.transform)  # a 128-px crop with a 256-px transform
    cx, cy = (int(v) for v in a.transform.inverse().apply(np.array([[127.5, 127.5]]))[0])
    assert tuple(out[cy, cx]) == (255, 0, 0)
    # the soft edge: a white crop on a black photo shows the blend weight; from the centre outwards it
    # falls from 1 to 0 steadily over several pixels instead of in one step
    black = np.zeros_like(astronaut)
    weight = paste_back(np.full((128, 128, 3), 255, np.uint8), black, a.transform)[..., 0].astype(float)
    edge = a.transform.inverse().apply(np.array([[127.5, -20.0]]))[0]
    line = np.linspace([cx, cy], edge, 200)
    profile = np.array([weight[round(y), round(x)] for x, y in line])
    assert profile[0] == 255 and profile[-1] == 0
    assert np.diff(profile).max() <= 2  # never rises again
    assert ((profile > 10) & (profile < 245)).sum() >= 8
    m = feather_mask(64)
    assert m[32, 32] == 1.0 and m[0, 0] == 0.0 and 0 < m[32, 2] < 1
    # fully transparent RGBA crop: the photo is unchanged
    rgba = np.zeros((128, 128, 4), np.uint8)
    np.testing.assert_array_equal(paste_back(rgba, astronaut, a.transform), astronaut)
    # custom mask: zero everywhere also leaves the photo as it was
    np.testing.assert_array_equal(paste_back(red, astronaut, a.transform, mask=np.zeros((128, 128))), astronaut)
    with pytest.raises(ValueError, match="transform was made"):
        paste_back(red, astronaut[:100], a.transform)


def test_transform_resized_consistent(astronaut_face):
    t = AlignTransform(np.eye(3), (512, 512), (256, 256))
    r = t.resized(128)
    # the crop's outer edges map to the same places at either size
    np.testing.assert_allclose(r.inverse().apply(np.array([[-0.5, -0.5], [127.5, 127.5]])),
                               t.inverse().apply(np.array([[-0.5, -0.5], [255.5, 255.5]])), atol=1e-9)
