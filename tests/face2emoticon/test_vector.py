"""The vector stylizer: every style draws, same attributes → same pixels, overrides show, Node missing → clear error."""
from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest

from face2emoticon.attributes import Attributes
from face2emoticon.styledata import NODE_DIR
from face2emoticon.styles import STYLE_NAMES
from face2emoticon.vector import Person, VectorRenderError, VectorStylizer

requires_node = pytest.mark.skipif(
    shutil.which("node") is None or not (NODE_DIR / "node_modules" / "@dicebear" / "core").exists(),
    reason="the vector stylizer needs Node.js and the style packages (`make setup` runs npm ci)")

PERSON = Person(Attributes(skin=1, hair_colour="brown", hair_length="long", glasses=False, beard=False), seed=3)


@pytest.fixture(scope="module")
def stylizer():
    s = VectorStylizer()
    yield s
    s.close()


@requires_node
@pytest.mark.parametrize("style", STYLE_NAMES)
def test_every_style_renders(stylizer, style):
    img = stylizer.render(PERSON, style, strength=0.5, size=96)
    assert img.dtype == np.uint8 and img.shape == (96, 96, 3)
    assert img.std() > 10  # a drawing, not a blank
    pts = stylizer.points(style, 96)
    assert pts.shape == (68, 2) and (pts >= 0).all() and (pts <= 96).all()


@requires_node
def test_same_attributes_same_pixels_and_overrides_show(stylizer):
    a = stylizer.render(PERSON, "avataaars", size=64)
    other = VectorStylizer()  # a fresh Node process, no shared cache
    try:
        np.testing.assert_array_equal(other.render(PERSON, "avataaars", size=64), a)
    finally:
        other.close()
    for change in ({"skin": 4}, {"glasses": True}, {"hair_colour": "blond"}, {"beard": True}):
        b = stylizer.render(stylizer.override(PERSON, **change), "avataaars", size=64)
        assert np.abs(b.astype(int) - a).sum() > 0, change
    happy = stylizer.render(PERSON, "micah", size=64, expression="happy")
    assert np.abs(happy.astype(int) - stylizer.render(PERSON, "micah", size=64)).sum() > 0
    assert stylizer.expression_variants("twemoji") == ()


@requires_node
def test_concurrent_renders(stylizer):
    people = [Person(PERSON.attributes.replace(skin=k), seed=3) for k in range(5)]
    want = [stylizer.render(p, "personas", size=48) for p in people]
    got: dict[int, np.ndarray] = {}

    def work(i):
        got[i] = stylizer.render(people[i], "personas", size=48 + 0)

    stylizer._cache.clear()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(5):
        np.testing.assert_array_equal(got[i], want[i])


def test_missing_node_is_a_clear_error():
    s = VectorStylizer(node="/nonexistent/node")
    with pytest.raises(VectorRenderError, match="Node.js"):
        s.render(PERSON, "micah", size=32)


@requires_node
def test_animation_blends_into_the_drawn_expression(stylizer):
    from video_gen.animate import animate

    still = stylizer.render(PERSON, "micah", size=96)
    peak = stylizer.render(PERSON, "micah", size=96, expression="happy")
    anim = animate(still, stylizer.points("micah", 96), expression="happy", frames=12, seed=0, peak=peak)
    frames = np.stack(anim.frames).astype(int)
    assert np.abs(frames[0] - still).mean() < 2  # the loop starts (and so ends) on the neutral still
    to_peak = np.abs(frames - peak).mean(axis=(1, 2, 3))
    to_still = np.abs(frames - still).mean(axis=(1, 2, 3))
    assert (to_peak < to_still).any()  # around the apex the frames show the drawn expression
