import numpy as np
import pytest

from face2emoticon.identity import (
    RegionTemplates,
    compare,
    delta_e,
    format_table,
    median_colour,
    photo_colours,
    photo_regions,
    summary,
)


def _face_points(size=128):
    """A plausible frontal 68-point layout (iBUG order) for a face centred in a ``size`` crop."""
    s = size / 128
    jaw = [(24 + 80 * i / 16, 60 + 40 * np.sin(np.pi * i / 16)) for i in range(17)]
    brows = [(34 + 6 * i, 48) for i in range(5)] + [(70 + 6 * i, 48) for i in range(5)]
    nose = [(64, 56 + 5 * i) for i in range(4)] + [(56 + 4 * i, 78) for i in range(5)]
    eye = lambda cx: [(cx - 8, 58), (cx - 4, 55), (cx + 4, 55), (cx + 8, 58), (cx + 4, 61), (cx - 4, 61)]
    mouth = [(50 + 28 * i / 11, 92 + 4 * np.sin(np.pi * i / 11)) for i in range(12)]
    inner = [(54 + 20 * i / 7, 92 + 2 * np.sin(np.pi * i / 7)) for i in range(8)]
    pts = np.array(jaw + brows + nose + eye(46) + eye(82) + mouth + inner, dtype=np.float32) * s
    assert pts.shape == (68, 2)
    return pts


def test_delta_e_is_zero_for_equal_and_large_for_different_colours():
    assert delta_e(np.array([200, 150, 120]), np.array([200, 150, 120])) == pytest.approx(0, abs=1e-6)
    near = delta_e(np.array([200, 150, 120]), np.array([202, 151, 121]))
    far = delta_e(np.array([255, 219, 180]), np.array([97, 67, 53]))
    assert 0 < near < 2.3
    assert far > 10


def test_median_colour_needs_enough_pixels():
    img = np.zeros((8, 8, 3), np.uint8)
    img[:4] = (10, 20, 30)
    mask = np.zeros((8, 8), bool)
    mask[:4] = True
    assert median_colour(img, mask).tolist() == [10, 20, 30]
    mask[:] = False
    mask[0, :3] = True
    assert median_colour(img, mask) is None


def test_photo_regions_find_skin_and_hair_of_a_drawn_face():
    size = 128
    pts = _face_points(size)
    img = np.full((size, size, 3), 240, np.uint8)
    skin, hair = np.array([210, 160, 120], np.uint8), np.array([60, 40, 30], np.uint8)
    img[:40] = hair  # hair above the brows
    img[40:] = skin
    img[55:62, 38:90] = (30, 30, 30)  # eyes
    regions = photo_regions(pts, img.shape[:2])
    assert regions["skin"].sum() > 100 and regions["hair"].sum() > 50
    assert not (regions["skin"] & regions["hair"]).any()
    colours = photo_colours(img, pts)
    assert delta_e(colours["skin"], skin) < 1 and delta_e(colours["hair"], hair) < 1


def test_compare_with_templates_and_round_trip(tmp_path):
    r = 16
    skin_map = np.zeros((r, r), np.float32)
    skin_map[8:, 4:12] = 1
    hair_map = np.zeros((r, r), np.float32)
    hair_map[:4] = 1
    t = RegionTemplates(r, {"toon": {"skin": skin_map, "hair": hair_map}})
    t.save(tmp_path / "t.safetensors")
    t2 = RegionTemplates.load(tmp_path / "t.safetensors")
    assert np.array_equal(t2.maps["toon"]["skin"], skin_map) and t2.resolution == r
    out = np.zeros((32, 32, 3), np.uint8)
    out[16:, 8:24] = (200, 150, 120)
    out[:8] = (50, 40, 30)
    table = compare({"skin": np.array([200, 150, 120]), "hair": None}, {"toon": out}, t2)
    assert table["toon"]["skin"] == pytest.approx(0, abs=1e-6) and table["toon"]["hair"] is None
    rows = {"photo": table}
    assert "| photo | 0.0 / –" in format_table(rows)
    assert summary(rows) == {"toon": {"skin": pytest.approx(0, abs=1e-6)}}


@pytest.mark.slow
def test_templates_from_renders_cover_face_and_hair():
    from face2emoticon.identity import build_templates

    t = build_templates(resolution=32, identities=3, styles=("avataaars", "twemoji"))
    for style in ("avataaars", "twemoji"):
        skin, hair = t.mask(style, "skin"), t.mask(style, "hair")
        assert 0.05 < skin.mean() < 0.6 and 0.02 < hair.mean() < 0.6, style
        assert (skin & hair).mean() < 0.02
