"""The pipeline with the vector stylizer, end to end on a sample photo (real stages, Node.js renderer)."""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import pytest

from face2emoticon.styledata import NODE_DIR
from ui.pipeline import (
    OptionsError,
    Pipeline,
    RenderOptions,
    add_option_arguments,
    options_from_args,
)

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
requires_node = pytest.mark.skipif(
    shutil.which("node") is None or not (NODE_DIR / "node_modules" / "@dicebear" / "core").exists(),
    reason="the vector stylizer needs Node.js and the style packages (`make setup` runs npm ci)")


def test_attribute_options_validate_and_key_the_cache():
    base = RenderOptions()
    assert base.stylizer == "vector" and base.attribute_overrides() == {}
    o = base.replace(skin=3, glasses=False)
    assert o.attribute_overrides() == {"skin": 3, "glasses": False}
    assert o.inversion_key() != base.inversion_key()
    assert base.replace(stylizer="gan").stylizer_key() != base.stylizer_key()
    for bad in ({"skin": 7}, {"hair_colour": "green"}, {"hair_length": "medium"}, {"stylizer": "oil"}):
        with pytest.raises(OptionsError):
            base.replace(**bad)


def test_attribute_flags_parse():
    p = argparse.ArgumentParser()
    add_option_arguments(p)
    o = options_from_args(p.parse_args(["--stylizer", "gan", "--skin", "2", "--glasses", "no", "--beard", "yes",
                                        "--hair-colour", "grey"]))
    assert (o.stylizer, o.skin, o.glasses, o.beard, o.hair_colour) == ("gan", 2, False, True, "grey")


@requires_node
def test_vector_pipeline_to_gif(tmp_path):
    from face2emoticon.style_landmarks import style_points

    pipe = Pipeline()
    opts = RenderOptions(styles=("micah",), expressions=("happy", "wink"), size=96, frames=8)
    res = pipe.render(SAMPLES / "astronaut.png", options=opts, output=tmp_path)
    assert [f.suffix for f in res.files] == [".gif", ".gif"] and all(f.stat().st_size > 0 for f in res.files)
    clip = res.clip("micah", "happy")
    assert clip.frames.shape == (8, 96, 96, 3) and clip.still.shape == (96, 96, 3)
    np.testing.assert_allclose(clip.points, style_points("micah", 96))  # the style's geometry, not the photo's
    # Overrides re-key the cache and change the drawing; the photo's reading stays as it was.
    dark = pipe.render(SAMPLES / "astronaut.png", options=opts.replace(expressions=("happy",), skin=4))
    assert np.abs(dark.still.astype(int) - clip.still).sum() > 0
    person = pipe.latent(res.image, pipe.face(res.image), options=opts)
    assert person.attributes.skin <= 1 and not person.attributes.overridden


@requires_node
def test_page_shows_and_applies_the_attributes(monkeypatch):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    import ui.pipeline

    monkeypatch.setattr(ui.pipeline, "_default", Pipeline())
    st.cache_resource.clear()
    try:
        at = AppTest.from_file(str(Path(__file__).resolve().parents[2] / "ui" / "app.py"), default_timeout=120)
        at.run()
        photo = (SAMPLES / "grace_hopper.jpg").read_bytes()
        at.file_uploader(key="upload").set_value(("grace_hopper.jpg", photo, "image/jpeg"))
        at.run()
        assert not at.exception and not at.error
        assert at.radio(key="stylizer").value == "vector"
        assert at.selectbox(key="attr_glasses").value is True
        assert at.selectbox(key="attr_hair_colour").value == "grey"
        at.selectbox(key="attr_beard").set_value(True)
        at.radio(key="style").set_value("micah")
        at.select_slider(key="size").set_value(64)
        at.run()
        at.button(key="animate").click().run()
        assert not at.exception and not at.error
        o = at.session_state["result"]["options"]
        assert (o.stylizer, o.beard, o.glasses, o.styles) == ("vector", True, None, ("micah",))
        # The neural stylizer draws a proxy of the same attributes: the same row sets it.
        at.radio(key="stylizer").set_value("gan").run()
        assert not at.exception and not at.error
        assert at.selectbox(key="attr_beard").value is True and at.selectbox(key="attr_glasses").value is True
        at.button(key="animate").click().run()
        assert not at.exception and not at.error
        o = at.session_state["result"]["options"]
        assert (o.stylizer, o.beard, o.invert_target) == ("gan", True, "auto")
    finally:
        st.cache_resource.clear()
