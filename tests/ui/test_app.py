"""The page flow with Streamlit's AppTest: upload → style → expression → result → download.

Stand-in stages keep this fast and model-free; test_browser.py runs the flow in Chromium, on the
stand-ins and on the shipped models.
"""
import io
import tomllib
import zipfile
from pathlib import Path

import pytest
import streamlit as st
from PIL import Image
from pipeline_fakes import fake_pipeline, write_photos
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest, app_test

import ui.pipeline
from landmarks.errors import EmogetError

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "ui" / "app.py")


class _KeptStorage(MemoryMediaFileStorage):
    """The test runtime's media store, kept reachable after the run so downloads can be read."""

    last = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        type(self).last = self


@pytest.fixture(autouse=True)
def keep_media(monkeypatch):
    monkeypatch.setattr(app_test, "MemoryMediaFileStorage", _KeptStorage)


@pytest.fixture
def page(monkeypatch):
    monkeypatch.setattr(ui.pipeline, "_default", fake_pipeline())
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    yield at
    st.cache_resource.clear()


def download_bytes(button) -> bytes:
    """The bytes a download button serves (from the test runtime's in-memory media store)."""
    return _KeptStorage.last.get_file(button.proto.url.rsplit("/", 1)[-1]).content


def upload(at, path: Path, name="me.png", mime="image/png"):
    at.file_uploader(key="upload").set_value((name, path.read_bytes(), mime))
    return at.run()


def test_empty_page_invites_an_upload(page):
    assert not page.exception
    assert "Upload a photo" in page.info[0].value


def test_upload_style_expression_result_download(page, tmp_path, monkeypatch):
    from video_gen.export import save_animation

    stages = ui.pipeline._default.stages
    fake_save = stages.save_animation
    # MP4 through the real encoder (one short clip): the download must be a real video file.
    monkeypatch.setattr(stages, "save_animation", lambda frames, path, **kw: (
        save_animation(frames, path, fps=kw["fps"], preset=kw.get("preset"), alpha=kw.get("alpha"))
        if Path(path).suffix == ".mp4" else fake_save(frames, path, **kw)))
    at = upload(page, write_photos(tmp_path, 1, size=40)[0])
    assert not at.exception and not at.error
    assert len(at.image) >= 3  # the face overlay, the crop, the style gallery
    assert at.radio(key="style").options == ["alpha", "beta", "gamma"]
    at.radio(key="style").set_value("gamma")
    at.selectbox(key="expression").set_value("sad")
    at.slider(key="intensity").set_value(0.5)
    at.select_slider(key="size").set_value(64)
    at.slider(key="fps").set_value(8)
    at.run()
    at.button(key="animate").click().run()
    assert not at.exception and not at.error
    result = at.session_state["result"]
    o = result["options"]
    assert (o.styles, o.expressions, o.intensity, o.size, o.fps) == (("gamma",), ("sad",), 0.5, 64, 8)
    gif = download_bytes(at.download_button(key="dl_gif"))
    assert gif == result["files"]["gif"]
    with Image.open(io.BytesIO(gif)) as im:
        assert im.format == "GIF" and im.n_frames == o.frames and im.size == (64, 64)
    assert download_bytes(at.download_button(key="dl_webp"))[8:12] == b"WEBP"
    mp4 = download_bytes(at.download_button(key="dl_mp4"))
    assert at.download_button(key="dl_mp4").label == "MP4"
    assert mp4 == result["files"]["mp4"] and mp4[4:8] == b"ftyp" and len(mp4) > 1000  # an ISO-BMFF video
    # settings changed after rendering: the old result stays, with a note
    at.selectbox(key="expression").set_value("happy").run()
    assert any("Settings changed" in c.value for c in at.caption)


def test_pack_download(page, tmp_path, monkeypatch):
    monkeypatch.setattr(ui.pipeline.Pipeline, "extension", staticmethod(lambda options: "gif"))
    at = upload(page, write_photos(tmp_path, 1, size=40)[0])
    at.slider(key="fps").set_value(30)
    at.button(key="build_pack").click().run()
    assert not at.exception and not at.error
    names = zipfile.ZipFile(io.BytesIO(download_bytes(at.download_button(key="dl_pack")))).namelist()
    assert "contact_sheet.png" in names and len([n for n in names if n.startswith("gif/")]) == 9
    # the photo's face and latent stay in this user's cache, never in the process-wide one
    assert len(ui.pipeline._default.cache) == 0
    assert len(at.session_state["latents"]) >= 2


@pytest.mark.parametrize("error, shown", [
    (EmogetError("Node.js ('node') was not found: install Node.js 18 or newer"), "install Node.js"),
    (RuntimeError("bad weights file"), "Try another photo or other settings"),
])
def test_style_gallery_failure_is_one_friendly_message(page, tmp_path, monkeypatch, error, shown):
    def thumbnail(*args, **kwargs):
        raise error

    monkeypatch.setattr(ui.pipeline._default, "thumbnail", thumbnail)
    at = upload(page, write_photos(tmp_path, 1, size=40)[0])
    assert not at.exception
    assert len(at.error) == 1 and shown in at.error[0].value
    assert not at.button  # the page stops at the gallery: nothing to animate


def test_style_list_failure_is_one_friendly_message(page, tmp_path, monkeypatch):
    def styles(options=None):
        raise EmogetError("could not read generator weights: give our .safetensors with its .json")

    monkeypatch.setattr(ui.pipeline._default, "styles", styles)
    at = upload(page, write_photos(tmp_path, 1, size=40)[0])
    assert not at.exception and len(at.error) == 1 and "could not read generator weights" in at.error[0].value


def test_friendly_errors_and_size_limit(page, tmp_path, monkeypatch):
    black = tmp_path / "black.png"
    Image.new("RGB", (32, 32)).save(black)
    at = upload(page, black)
    assert not at.exception and "no face found" in at.error[0].value
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a photo")
    at = upload(at, bad, name="bad.jpg", mime="image/jpeg")
    assert not at.exception and "cannot read" in at.error[0].value and "bad.jpg" in at.error[0].value
    monkeypatch.setenv("EMOGET_MAX_UPLOAD_MB", "0.001")  # 1 KB: the test photo is bigger
    photo = write_photos(tmp_path, 1, size=40)[0]
    assert photo.stat().st_size > 1100
    at = upload(at, photo)
    assert not at.exception and "the limit is 0.001 MB" in at.error[0].value and not at.image


def test_upload_limit_is_the_servers(page, tmp_path):
    """The page's own check uses the server's maxUploadSize, the limit the uploader shows."""
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == 10
    for section, values in config.items():
        for name in values:
            st.config.get_option(f"{section}.{name}")  # raises for a name this streamlit does not know
    served = st.config.get_option("server.maxUploadSize")
    assert page.file_uploader(key="upload").proto.max_upload_size_mb == served
    photo = write_photos(tmp_path, 1, size=40)[0]
    st.config.set_option("server.maxUploadSize", 1)
    try:
        big = tmp_path / "big.png"
        big.write_bytes(photo.read_bytes() + bytes(1024 * 1024))  # 1 MB of trailing bytes: still a readable PNG
        at = upload(page, big)
        assert at.file_uploader(key="upload").proto.max_upload_size_mb == 1
        assert not at.exception and "the limit is 1 MB" in at.error[0].value
        assert not upload(at, photo).error
    finally:
        st.config.set_option("server.maxUploadSize", served)


def test_sessions_do_not_share_results(monkeypatch, tmp_path):
    monkeypatch.setattr(ui.pipeline, "_default", fake_pipeline())
    st.cache_resource.clear()
    a = AppTest.from_file(APP, default_timeout=60).run()
    b = AppTest.from_file(APP, default_timeout=60).run()
    a = upload(a, write_photos(tmp_path, 1, size=40)[0])
    a.button(key="animate").click().run()
    b.run()
    assert "result" in a.session_state and "result" not in b.session_state
    assert not b.download_button and b.info  # b still sees the empty page
