"""The emoget page: ``make run`` (``streamlit run ui/app.py``).

Photo (upload or camera) → the detected face and its crop → this person in every style →
pick a style and an expression → an animation with GIF / WebP / MP4 / sticker-pack downloads.

Models load once per process (``st.cache_resource``); everything about a user (their photo,
latents, results) lives in their own ``st.session_state``, so two users never see each other's.
Every widget has a ``key`` (the page tests address them by it).
"""
from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image, ImageDraw

from landmarks.errors import EmogetError
from ui.pipeline import (
    STAGES,
    LatentCache,
    Pipeline,
    RenderOptions,
    default_pipeline,
    image_digest,
)

log = logging.getLogger(__name__)

# The page's upload limit: the server's (``.streamlit/config.toml``), which the uploader also shows.
MAX_UPLOAD_MB = float(os.environ.get("EMOGET_MAX_UPLOAD_MB") or st.get_option("server.maxUploadSize"))
PHOTO_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "gif"]
SIZES = [64, 96, 128, 192, 256]
PRESETS = ["none", "discord", "slack", "line", "telegram", "kakao"]
STYLIZER_TITLES = {"vector": "vector art (drawn from your photo)", "gan": "neural (StyleGAN2, experimental)"}
SKIN_TITLES = ["1 · lightest", "2", "3", "4", "5 · darkest"]
STAGE_TITLES = {"detect": "finding the face", "align": "cropping", "invert": "learning your face",
                "stylize": "drawing the style", "animate": "animating", "compose": "compositing",
                "export": "encoding"}


@st.cache_resource(show_spinner="Loading the models (once per server)…")
def get_pipeline() -> Pipeline:
    pipeline = default_pipeline()
    pipeline.stylizer()  # load the generator now, not in the first user's render
    return pipeline


def session_cache() -> LatentCache:
    """This user's latents (never shared between sessions)."""
    if "latents" not in st.session_state:
        st.session_state["latents"] = LatentCache(max_items=8)
    return st.session_state["latents"]


def friendly(exc: Exception) -> None:
    if isinstance(exc, EmogetError):
        st.error(str(exc), icon="🙈")
    else:
        log.exception("page error")
        st.error(f"Something went wrong ({type(exc).__name__}: {exc}). Try another photo or other settings.",
                 icon="⚠️")


def photo_input():
    """The uploaded or camera photo as (name, bytes), or None; enforces the size limit."""
    source = st.radio("Photo", ["Upload a photo", "Take a photo"], key="source", horizontal=True,
                      label_visibility="collapsed")
    if source == "Upload a photo":
        f = st.file_uploader("A photo with one face, looking at the camera", type=PHOTO_TYPES, key="upload")
    else:
        f = st.camera_input("Look at the camera", key="camera")
    if f is None:
        return None
    data = f.getvalue()
    if len(data) > MAX_UPLOAD_MB * 1024 * 1024:
        st.error(f"This photo is {len(data) / 1024 / 1024:.1f} MB; the limit is {MAX_UPLOAD_MB:g} MB. "
                 "Try a smaller photo (any phone photo resized to a few megapixels is plenty).", icon="📦")
        return None
    return getattr(f, "name", "camera.jpg"), data


def overlay(image: np.ndarray, face) -> Image.Image:
    """The photo with the face box and 68 landmarks drawn, at most 480 px wide."""
    im = Image.fromarray(image)
    scale = min(1.0, 480 / max(im.size))
    im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))))
    d = ImageDraw.Draw(im)
    x0, y0, x1, y1 = (float(v) * scale for v in face.box)
    d.rectangle((x0, y0, x1, y1), outline=(0, 200, 120), width=2)
    for x, y in np.asarray(face.points) * scale:
        d.ellipse((x - 1.5, y - 1.5, x + 1.5, y + 1.5), fill=(255, 80, 60))
    return im


def attribute_row(person, photo: str) -> dict:
    """Selectboxes with the attributes read from the photo; returns the ones the user changed."""
    from face2emoticon.styledata.people import HAIR_COLOURS, HAIR_LENGTHS

    read = person.attributes
    choices = {"skin": list(range(len(SKIN_TITLES))), "hair_colour": list(HAIR_COLOURS),
               "hair_length": list(HAIR_LENGTHS), "glasses": [False, True], "beard": [False, True]}
    labels = {"skin": "Skin tone", "hair_colour": "Hair colour", "hair_length": "Hair", "glasses": "Glasses",
              "beard": "Beard"}
    if st.session_state.get("attrs_photo") != photo:  # a new photo: start from what it shows
        for name in choices:
            st.session_state[f"attr_{name}"] = getattr(read, name)
        st.session_state["attrs_photo"] = photo
    st.caption("What we read from your photo. Not quite you? Adjust:")
    changed = {}
    for col, (name, options) in zip(st.columns(len(choices)), choices.items()):
        fmt = (lambda v: SKIN_TITLES[v]) if name == "skin" else (lambda v: ("yes" if v else "no")) if isinstance(
            options[0], bool) else str
        value = col.selectbox(labels[name], options, key=f"attr_{name}", format_func=fmt,
                              help=f"read from the photo: {fmt(getattr(read, name))} "
                                   f"(confidence {read.confidence(name):.0%})")
        if value != getattr(read, name):
            changed[name] = value
    return changed


def proxy_person(pipeline, image, face, options: RenderOptions):
    """The attributes the neural stylizer's proxy is drawn from (read as the vector stylizer reads them), or
    None when it inverts the photo itself (weights that were not trained on the style renders)."""
    resolve = getattr(pipeline.stylizer(options), "resolve_target", None)
    if resolve is None or resolve(options.invert_target) != "proxy":
        return None
    return pipeline.latent(image, face, options=options.replace(stylizer="vector"), cache=session_cache())


def controls(styles: list[str], expressions: list[str], *, strength_applies: bool = True) -> dict:
    st.subheader("3 · Expression and settings")
    c1, c2 = st.columns(2)
    with c1:
        default = expressions.index("happy") if "happy" in expressions else 0
        expression = st.selectbox("Expression", expressions, index=default, key="expression")
        intensity = st.slider("Expression intensity", 0.0, 1.0, 0.8, 0.05, key="intensity")
        strength = st.slider("Stylisation strength", 0.0, 1.0, RenderOptions.strength, 0.05, key="strength",
                             help="0 keeps most of you, 1 is the style's average face (neural stylizer)",
                             disabled=not strength_applies)
    with c2:
        size = st.select_slider("Size (px)", SIZES, value=128, key="size")
        fps = st.slider("Speed (frames per second)", 4, 30, 12, 1, key="fps")
        preset = st.selectbox("Sticker preset", PRESETS, key="preset",
                              help="fits the file to the platform's limits (size, frames, bytes)")
        transparent = st.checkbox("Transparent background", key="transparent")
    return {"expressions": (expression,), "intensity": intensity, "strength": strength, "size": size, "fps": fps,
                "preset": None if preset == "none" else preset, "transparent": transparent}


def gallery(pipeline: Pipeline, image: np.ndarray, latent, styles: list[str], base: RenderOptions) -> list:
    """The person in every style (uint8 [96,96,3] each), kept in the session until the photo, the
    strength or the inversion options change."""
    strength = st.session_state.get("strength", base.strength)
    key = (image_digest(image), round(float(strength), 3), base.inversion_key())
    if st.session_state.get("thumbs_key") != key:
        st.session_state["thumbs"] = [pipeline.thumbnail(latent, s, options=base.replace(strength=strength))
                                      for s in styles]
        st.session_state["thumbs_key"] = key
    return st.session_state["thumbs"]


def render_files(pipeline: Pipeline, image: np.ndarray, options: RenderOptions) -> dict:
    """Render one animation with a progress bar per stage; returns the files' bytes."""
    bars = {}
    box = st.empty()  # cleared once the files are ready
    with box.container(border=True):
        for stage in STAGES:
            bars[stage] = st.progress(0.0, text=STAGE_TITLES[stage])

    def progress(stage: str, fraction: float):
        if stage in bars:
            bars[stage].progress(fraction, text=f"{STAGE_TITLES[stage]} · {fraction:.0%}")

    result = pipeline.render(image, options=options.replace(preset=None), progress=progress, cache=session_cache())
    clip = result.clip(options.styles[0], options.expressions[0])
    files = {}
    with tempfile.TemporaryDirectory(prefix="emoget-page-") as tmp:
        for fmt in ("gif", "webp", "mp4"):
            files[fmt] = pipeline.export(clip, Path(tmp) / f"emoticon.{fmt}").read_bytes()
            progress("export", len(files) / 4)
        if options.preset:
            ext = pipeline.extension(options)
            files["preset"] = pipeline.export(clip, Path(tmp) / f"sticker.{ext}", preset=options.preset).read_bytes()
            files["preset_name"] = f"{options.preset}.{ext}"
        progress("export", 1.0)
    box.empty()
    return {"files": files, "timings": result.timings}


def pack_bytes(pipeline: Pipeline, image: np.ndarray, options: RenderOptions) -> bytes:
    from ui.pack import DEFAULT_PRESET, make_pack

    bar = st.progress(0.0, text="building the pack")
    with tempfile.TemporaryDirectory(prefix="emoget-pack-") as tmp:
        pack = make_pack(image, Path(tmp) / "pack.zip",
                         options=options.replace(styles=(), expressions=tuple(pipeline.expressions())),
                         pipeline=pipeline, preset=options.preset or DEFAULT_PRESET, cache=session_cache(),
                         progress=lambda stage, f: bar.progress(f, text=f"building the pack · {stage}"))
        data = pack.path.read_bytes()
    bar.empty()
    return data


def main() -> None:
    st.set_page_config(page_title="emoget", page_icon="🙂", layout="wide")
    st.title("emoget")
    st.caption("One face photo in, an animated emoticon of you out. Everything runs on this server's CPU; "
               "your photo is not kept after you leave.")

    try:
        pipeline = get_pipeline()
    except Exception as exc:  # noqa: BLE001 - e.g. unreadable weights: one message, not a traceback
        friendly(exc)
        st.stop()

    st.subheader("1 · Your photo")
    photo = photo_input()
    if photo is None:
        st.info("Upload a photo of a face (or take one with the camera) to start.", icon="📷")
        return
    name, data = photo
    base = RenderOptions()
    try:
        image = pipeline.load(data, name=name)
        face = pipeline.face(image, options=base, cache=session_cache())
    except Exception as exc:  # noqa: BLE001 - shown to the user as a friendly message
        friendly(exc)
        return
    crop = pipeline.crop(image, face, size=256)
    c1, c2 = st.columns([2, 1])
    c1.image(overlay(image, face), caption="the face we found")
    c2.image(crop, caption="the crop we animate", width=192)

    st.subheader("2 · You, in every style")
    stylizer = st.radio("Drawn as", list(STYLIZER_TITLES), key="stylizer", horizontal=True,
                        format_func=STYLIZER_TITLES.get,
                        help="vector art: your skin tone, hair, glasses and beard drawn with each style's own art, "
                             "crisp at any size; neural: a small StyleGAN2 redraws the same attributes in its own "
                             "hand (softer, slower)")
    base = base.replace(stylizer=stylizer)
    try:  # the stylizer's models and renderer are first used here (Node.js, weights files)
        styles = pipeline.styles(base)
        with st.spinner("Learning your face (a few seconds, once per photo)…"):
            latent = pipeline.latent(image, face, options=base, cache=session_cache())
        person = latent if hasattr(latent, "attributes") else proxy_person(pipeline, image, face, base)
        overrides = attribute_row(person, image_digest(image)) if person is not None else {}
        if overrides:
            base = base.replace(**overrides)
            latent = pipeline.latent(image, face, options=base, cache=session_cache())
        st.image(gallery(pipeline, image, latent, styles, base), caption=styles, width=96)
    except Exception as exc:  # noqa: BLE001 - shown to the user as a friendly message
        friendly(exc)
        return
    style = st.radio("Style", styles, key="style", horizontal=True)

    settings = controls(styles, pipeline.expressions(), strength_applies=stylizer != "vector")
    options = base.replace(styles=(style,), **settings)

    st.subheader("4 · Your emoticon")
    if st.button("Animate", key="animate", type="primary"):
        try:
            st.session_state["result"] = {"options": options, "photo": image_digest(image),
                                          **render_files(pipeline, image, options)}
        except Exception as exc:  # noqa: BLE001
            friendly(exc)
    result = st.session_state.get("result")
    if result and result["photo"] == image_digest(image):
        if result["options"] != options:
            st.caption("Settings changed since this animation: press Animate to update it.")
        files = result["files"]
        o = result["options"]
        st.image(files["gif"], caption=f"{o.styles[0]} · {o.expressions[0]}", width=min(o.size * 2, 384))
        total = sum(result["timings"].values())
        st.caption(f"made in {total:.1f} s (" + ", ".join(f"{k} {v:.1f} s" for k, v in result["timings"].items()
                                                            if v >= 0.05) + ")")
        stem = f"emoget_{o.styles[0]}_{o.expressions[0]}"
        d1, d2, d3, d4 = st.columns(4)
        d1.download_button("GIF", files["gif"], f"{stem}.gif", "image/gif", key="dl_gif", on_click="ignore")
        d2.download_button("WebP", files["webp"], f"{stem}.webp", "image/webp", key="dl_webp", on_click="ignore")
        d3.download_button("MP4", files["mp4"], f"{stem}.mp4", "video/mp4", key="dl_mp4", on_click="ignore")
        if "preset" in files:
            d4.download_button(f"Sticker ({files['preset_name']})", files["preset"], f"{stem}_{files['preset_name']}",
                               key="dl_preset", on_click="ignore")

    st.subheader("5 · The whole pack")
    st.caption("Every expression in every style, a contact sheet and sticker files, in one zip.")
    if st.button("Build the pack", key="build_pack"):
        try:
            st.session_state["pack"] = {"photo": image_digest(image), "zip": pack_bytes(pipeline, image, options)}
        except Exception as exc:  # noqa: BLE001
            friendly(exc)
    pack = st.session_state.get("pack")
    if pack and pack["photo"] == image_digest(image):
        st.download_button("Download the pack (zip)", pack["zip"], "emoget_pack.zip", "application/zip",
                           key="dl_pack", on_click="ignore")


main()

