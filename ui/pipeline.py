"""The one pipeline: photo → face → aligned crop → latent → styled still → animation → files.

Every entry point (``emoget render|pack|batch|demo``, the Streamlit page, the
Python API ``emoget.render``) goes through :class:`Pipeline`. The stages are the
stage packages' public functions, gathered in :class:`Stages`; tests may pass
their own callables, the product always uses :func:`default_stages`.

Stage order, as reported to the progress callback and in ``PipelineResult.timings``::

    detect → align → invert → stylize → animate → compose → export

``invert`` is the expensive one; its result (the latent) is cached per photo
in a :class:`LatentCache`, keyed by a hash of the pixels and of the options
that change the inversion, so a second style or expression of the same photo
skips detection and inversion.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from landmarks.errors import EmogetError, WeightsError

log = logging.getLogger(__name__)

STAGES = ("detect", "align", "invert", "stylize", "animate", "compose", "export")
STYLIZERS = ("vector", "gan")
INVERT_OPTIMIZERS = ("lbfgs", "adam")
INVERT_TARGETS = ("auto", "proxy", "photo")
PROXY_STEPS, PHOTO_STEPS = 10, 60  # default inversion steps per target (measured: see GanStylizer)
ATTRIBUTES = ("skin", "hair_colour", "hair_length", "glasses", "beard")  # the person's overrides (vector, GAN proxy)
FORMATS = ("gif", "webp", "apng", "png", "mp4", "webm")  # png = APNG

ProgressFn = Callable[[str, float], None]


class OptionsError(EmogetError, ValueError):
    """An option is out of range or names something that does not exist."""


# --------------------------------------------------------------------------- options


def _opt(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True)
class RenderOptions:
    """Everything that changes what the pipeline makes. The CLI's flags are generated from these fields."""

    styles: tuple[str, ...] = _opt((), "style name(s); default: the first style of the weights", flag="style")
    expressions: tuple[str, ...] = _opt(("happy",), "expression name(s)", flag="expression")
    strength: float = _opt(0.25, "stylisation strength 0-1: truncation of the person's latent toward the "
                                 "style's mean face (0 = most like the photo, 1 = the style's average face)")
    intensity: float = _opt(0.8, "expression intensity 0-1")
    frames: int = _opt(24, "frames per animation")
    fps: int = _opt(12, "frames per second")
    size: int = _opt(128, "output size in pixels (the face crop; with --paste-back the photo keeps its own size)")
    seed: int = _opt(0, "random seed (inversion noise, motion)")
    preset: str | None = _opt(None, "sticker preset (discord, slack, line, telegram, kakao): fits size, "
                                    "frames and file size to the platform's limits")
    format: str = _opt("gif", "file format when no output name says it: " + ", ".join(FORMATS))
    weights: str | None = _opt(None, "generator weights: a registry name, a .safetensors/.pt/.pkl path or a "
                                     "train-gan run folder (default: the shipped generator)")
    base_weights: str | None = _opt(None, "network blending (Toonify): the base generator the --weights model "
                                          "was fine-tuned from (e.g. FFHQ); the photo is inverted in the base "
                                          "and rendered with the blend of the two")
    blend_resolution: int = _opt(32, "with --base-weights: synthesis blocks below this resolution come from "
                                     "the base, the rest from --weights")
    landmark_backend: str = _opt("mediapipe", "face landmark backend: mediapipe, fan or dlib")
    face_index: int | None = _opt(None, "which face when the photo has several (0 = largest)")
    device: str = _opt("cpu", "torch device, e.g. cpu or cuda")
    invert_steps: int | None = _opt(None, "inversion optimisation steps from the encoder's start (default: "
                                          f"{PROXY_STEPS} for a proxy, which the encoder already lands close to; "
                                          f"{PHOTO_STEPS} for a photo: more is a closer likeness, slower)")
    invert_optimizer: str = _opt("lbfgs", "inversion optimiser: lbfgs (converges about twice as fast from the "
                                          "encoder's start) or adam (the StyleGAN2 projector's schedule)")
    invert_target: str = _opt("auto", "what the GAN inverts: proxy (the skin tone, hair, glasses and beard read off "
                                      "the photo, drawn as a vector avatar in the generator's first style: inside "
                                      "the generator's domain, so stills stay clean), photo (the aligned photo "
                                      "itself, for generators of photos such as FFHQ or Toonify blends) or auto "
                                      "(proxy for generators of the style renders, else photo)")
    paste_back: bool = _opt(False, "put the animated face back into the original photo at its original size")
    transparent: bool = _opt(False, "transparent background (GIF, WebP, APNG)")
    stylizer: str = _opt("vector", "how the person is drawn: vector (the style's own vector art, from the skin "
                                   "tone, hair, glasses and beard read off the photo; crisp at any size) or gan "
                                   "(the learnt StyleGAN2 with inversion; giving --weights or --base-weights "
                                   "chooses it)")
    skin: int | None = _opt(None, "vector stylizer and GAN proxy: skin tone, 0 (lightest) to 4 (darkest) "
                                  "(default: read from the photo)")
    hair_colour: str | None = _opt(None, "vector stylizer and GAN proxy: hair colour: black, dark-brown, brown, auburn, "
                                         "blond, red or grey (default: read from the photo)")
    hair_length: str | None = _opt(None, "vector stylizer and GAN proxy: hair length: short, long or bald "
                                         "(default: read from the photo)")
    glasses: bool | None = _opt(None, "vector stylizer and GAN proxy: glasses, yes or no (default: read from the photo)")
    beard: bool | None = _opt(None, "vector stylizer and GAN proxy: beard, yes or no (default: read from the photo)")
    upscale: bool = _opt(True, "sharpen stills larger than the generator's resolution with the learned x4 "
                               "upscaler (off: plain Lanczos resize)")

    def __post_init__(self):
        for name in ("styles", "expressions"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = (value,)
            object.__setattr__(self, name, tuple(dict.fromkeys(value)))  # dedupe, keep order
        if not self.expressions:
            raise OptionsError("give at least one expression (see `emoget expressions`)")
        for name, lo, hi in (("strength", 0.0, 1.0), ("intensity", 0.0, 1.0)):
            v = getattr(self, name)
            if not lo <= v <= hi:
                raise OptionsError(f"{name} must be between {lo} and {hi}, got {v}")
        if not 2 <= self.frames <= 240:
            raise OptionsError(f"frames must be between 2 and 240, got {self.frames}")
        if not 1 <= self.fps <= 60:
            raise OptionsError(f"fps must be between 1 and 60, got {self.fps}")
        if not 32 <= self.size <= 1024:
            raise OptionsError(f"size must be between 32 and 1024 pixels, got {self.size}")
        if self.format not in FORMATS:
            raise OptionsError(f"unknown format {self.format!r}; choose one of {', '.join(FORMATS)}")
        if self.invert_steps is not None and self.invert_steps < 0:
            raise OptionsError(f"invert_steps must be >= 0, got {self.invert_steps}")
        if self.invert_optimizer not in INVERT_OPTIMIZERS:
            raise OptionsError(f"unknown invert_optimizer {self.invert_optimizer!r}; choose one of "
                               f"{', '.join(INVERT_OPTIMIZERS)}")
        if self.invert_target not in INVERT_TARGETS:
            raise OptionsError(f"unknown invert_target {self.invert_target!r}; choose one of {', '.join(INVERT_TARGETS)}")
        if self.blend_resolution < 4 or self.blend_resolution & (self.blend_resolution - 1):
            raise OptionsError(f"blend_resolution must be a power of two >= 4, got {self.blend_resolution}")
        self._check_attributes()

    def _check_attributes(self) -> None:
        from face2emoticon.styledata import people

        if self.stylizer == "vector" and (self.weights or self.base_weights):
            object.__setattr__(self, "stylizer", "gan")  # generator weights only mean something to the GAN
        if self.stylizer not in STYLIZERS:
            raise OptionsError(f"unknown stylizer {self.stylizer!r}; choose one of {', '.join(STYLIZERS)}")
        tones = len(people.SKIN_TONES)
        if self.skin is not None and not 0 <= self.skin < tones:
            raise OptionsError(f"skin must be 0 (lightest) to {tones - 1} (darkest), got {self.skin}")
        for name, known in (("hair_colour", people.HAIR_COLOURS), ("hair_length", people.HAIR_LENGTHS)):
            v = getattr(self, name)
            if v is not None and v not in known:
                raise OptionsError(f"unknown {name.replace('_', ' ')} {v!r}; choose one of {', '.join(known)}")

    def replace(self, **changes) -> RenderOptions:
        return dataclasses.replace(self, **changes)

    def inversion_key(self) -> tuple:
        """The options that change detection and inversion (and so the cached latent)."""
        return (*self.stylizer_key(), self.landmark_backend, self.face_index, self.invert_steps,
                self.invert_optimizer, self.invert_target, self.seed,
                tuple(sorted(self.attribute_overrides().items())))

    def attribute_overrides(self) -> dict:
        """The person's attributes the user set (vector stylizer); the rest are read from the photo."""
        return {k: getattr(self, k) for k in ATTRIBUTES if getattr(self, k) is not None}

    def stylizer_key(self) -> tuple:
        """The options that choose the stylizer's models."""
        if self.stylizer == "vector":
            return ("vector",)
        if self.base_weights is None:
            return (self.weights, self.device)
        return (self.weights, self.device, self.base_weights, self.blend_resolution)


# --------------------------------------------------------------------------- results


@dataclass
class Clip:
    """One style × expression animation.

    ``still``: uint8 [S,S,3] the styled face; ``points``: float32 [68,2] its landmarks (still pixels);
    ``frames``: uint8 [T,H,W,3] (H,W = size, or the photo's size with paste-back);
    ``alpha``: uint8 [T,H,W] (255 = opaque) or None; ``file``: the written file or None.
    """

    style: str
    expression: str
    still: np.ndarray
    points: np.ndarray
    frames: np.ndarray
    fps: float
    alpha: np.ndarray | None = None
    file: Path | None = None


@dataclass
class PipelineResult:
    """What :meth:`Pipeline.render` returns.

    ``image``: uint8 [H,W,3] the loaded photo; ``landmarks``: float32 [68,2] in photo pixels;
    ``box``: the face box in photo pixels; ``crop``: uint8 [S,S,3] the aligned face at the output size;
    ``clips``: one per style × expression, styles outermost; ``timings``: seconds per stage;
    ``cached``: True when detection and inversion came from the cache.
    """

    image: np.ndarray
    landmarks: np.ndarray
    box: tuple[float, float, float, float]
    crop: np.ndarray
    clips: list[Clip]
    timings: dict[str, float]
    cached: bool = False

    @property
    def frames(self) -> np.ndarray:
        return self.clips[0].frames

    @property
    def still(self) -> np.ndarray:
        return self.clips[0].still

    @property
    def files(self) -> list[Path]:
        return [c.file for c in self.clips if c.file is not None]

    def clip(self, style: str, expression: str) -> Clip:
        for c in self.clips:
            if c.style == style and c.expression == expression:
                return c
        raise KeyError((style, expression))


# --------------------------------------------------------------------------- stages


@dataclass
class Stages:
    """The stage functions the pipeline calls; see DEVELOPERS.md for their contracts.

    ``stylizer(weights, device)`` builds a :class:`GanStylizer`-like object (``styles``, ``resolution``,
    ``invert(crop, *, seed, steps, points, progress, optimizer)``, ``render(latent, style, *, strength, size, upscale)``;
    one with ``resolve_target`` also gets ``target`` and ``attributes``, and one with ``align_size`` its crop at
    that size); it is called once per (weights, device) and kept.
    """

    load_image: Callable[..., np.ndarray]
    detect: Callable[..., Any]
    align: Callable[..., Any]
    stylizer: Callable[..., Any]
    animate: Callable[..., Any]
    paste_back: Callable[..., np.ndarray]
    alpha_matte: Callable[[np.ndarray], np.ndarray]  # uint8 [T,H,W,3] → opacity [T,H,W]
    save_animation: Callable[..., Path]
    expressions: Callable[[], list[str]] | None = None  # names of the expressions; None = video_gen's registry
    # builds the vector stylizer (``--stylizer vector``); stand-in stages without one use ``stylizer`` for both
    vector_stylizer: Callable[[], Any] | None = None


def default_stages() -> Stages:
    """The real stages. Imports lazily so that importing the pipeline stays cheap."""
    try:
        import landmarks
        from video_gen.animate import animate
        from video_gen.export import save_animation
        from video_gen.matte import alpha_matte
    except ImportError as exc:
        raise EmogetError(f"a pipeline stage is missing from this install ({exc}); reinstall emoget") from exc

    return Stages(
        load_image=landmarks.load_image, detect=landmarks.detect, align=landmarks.align, stylizer=load_stylizer,
        animate=animate, paste_back=landmarks.paste_back, alpha_matte=alpha_matte, save_animation=save_animation,
        expressions=available_expressions, vector_stylizer=load_vector_stylizer,
    )


# --------------------------------------------------------------------------- stylizer

DEFAULT_GENERATOR = "stylegan2-emoget-64"
DEFAULT_ENCODER = "encoder-emoget-64"
DEFAULT_UPSCALER = "upscale-emoget-x4"


class GanStylizer:
    """The conditional StyleGAN2 as the pipeline sees it: invert a face once, render it in any style.

    A face is inverted in ``invert_style``'s class. Its latent's offset from that class's mean w
    is the person; rendering in style ``s`` adds the offset, scaled by ``1 - strength`` (truncation
    toward ``s``'s mean face), to ``s``'s mean w: ``w_s = mean_w(s) + (1 - strength) * (w - mean_w(k))``.

    What is inverted (``target`` of :meth:`invert`): the aligned photo itself, or its *proxy*: the
    attributes every style draws (skin tone, hair colour and length, glasses, beard:
    :func:`face2emoticon.attributes.estimate`) drawn as ``invert_style``'s vector avatar. A generator
    trained on the style renders has never seen a photo; inverting one drags its latent off the
    renders' manifold (wavy, blotchy stills), while the proxy is a render like those it learnt, so the
    inversion lands where its stills are clean and every style reads the same person. The proxy needs
    the vector renderer (Node.js) and a generator whose ``invert_style`` is one of the vector styles.
    Measured with the shipped weights on the two sample photos (LPIPS-alex at 64 px between each style's
    still, strength 0.25, and the same person's vector drawing in that style, mean of the six styles):
    proxy 0.12 / 0.13 (astronaut / Grace Hopper) at 10 steps, photo 0.23 / 0.36; 0 and 10 steps are
    alike, 60 fit the proxy's own style more closely and carry slightly worse (0.13 / 0.15).
    """

    def __init__(self, G, *, encoder=None, device: str = "cpu", invert_style: str | None = None,
                 invert_G=None, name: str = "custom", upscaler=None, vector=None):
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.G = G.to(self.device).eval().requires_grad_(False)
        # Network blending inverts in the base generator and renders with the blend (same w space).
        self.invert_G = invert_G.to(self.device).eval().requires_grad_(False) if invert_G is not None else self.G
        if self.invert_G.num_ws != self.G.num_ws or self.invert_G.cfg.w_dim != self.G.cfg.w_dim:
            raise WeightsError("the base and the styled generator have different latent spaces: blend a model "
                               "with the base it was fine-tuned from")
        self.encoder = encoder.to(self.device).eval() if encoder is not None else None
        # Stills shown larger than the generator's resolution go through this x4 network (None: Lanczos only).
        self.upscaler = upscaler.to(self.device).eval() if upscaler is not None else None
        # An unconditional generator (e.g. a toonified FFHQ model) is one style, named after its file.
        self.conditional = bool(G.cfg.class_names)
        self.styles = list(G.cfg.class_names) or [name]
        self.resolution = int(G.cfg.resolution)
        self.invert_style = invert_style or self.styles[0]
        self._means: dict[tuple, Any] = {}
        self._vector = vector  # the proxy's renderer (default: the process's load_vector_stylizer(), on first use)

    @property
    def align_size(self) -> int:
        """The size of the aligned crop :meth:`invert` wants: the proxy's attributes are read at 256 px."""
        return max(256, self.resolution)

    def can_proxy(self) -> bool:
        """Whether a proxy can stand for the photo: the generator draws the vector styles it inverts in (a
        generator of the style renders, not a blend whose inversion runs in a photo generator)."""
        from face2emoticon.styles import STYLE_NAMES

        return self.conditional and self.invert_G is self.G and self.invert_style in STYLE_NAMES

    def resolve_target(self, target: str) -> str:
        """``auto`` → ``proxy`` when :meth:`can_proxy`, else ``photo``; ``proxy`` is checked."""
        if target == "auto":
            return "proxy" if self.can_proxy() else "photo"
        if target == "proxy" and not self.can_proxy():
            raise OptionsError(f"this generator cannot invert a proxy: its style {self.invert_style!r} is not one "
                               "of the vector styles (or it is a blend, inverted in its base); use "
                               "--invert-target photo")
        return target

    def proxy(self, crop: np.ndarray, points: np.ndarray, *, seed: int, attributes: dict | None = None
              ) -> tuple[np.ndarray, Any]:
        """(uint8 [256,256,3] the proxy, its :class:`~face2emoticon.vector.Person`): the attributes of the face
        in ``crop`` (``points`` its landmarks), with the user's ``attributes`` set, drawn in ``invert_style``."""
        person = self.vector.invert(crop, points=points, seed=seed)
        if attributes:
            person = person.replace(**attributes)
        return self.vector.render(person, self.invert_style, size=256), person

    @property
    def vector(self):
        """The proxy's renderer (:class:`~face2emoticon.vector.VectorStylizer`), loaded on first use."""
        if self._vector is None:
            self._vector = load_vector_stylizer()
        return self._vector

    def points(self, style: str, size: int) -> np.ndarray | None:
        """float32 [68,2]: where ``style``'s renders (which the generator learnt) draw the face parts, in a
        ``size`` px still; None for a style without a template (e.g. an unconditional generator)."""
        from face2emoticon.style_landmarks import style_points

        return style_points(style, size)

    def class_index(self, style: str) -> int | None:
        return self.styles.index(style) if self.conditional else None

    def mean_w(self, style: str, G=None):
        """[1,w_dim] the style's mean w (the generator's own seeded, cached estimate)."""
        G = self.G if G is None else G
        key = (id(G), style)
        if key not in self._means:
            with self.torch.no_grad():
                self._means[key] = G.mean_w(self.class_index(style)).to(self.device)
        return self._means[key]

    def to_tensor(self, image: np.ndarray):
        """uint8 [H,W,3] → float32 [1,3,R,R] in [-1,1] at the generator's resolution."""
        from PIL import Image

        if image.shape[0] != self.resolution or image.shape[1] != self.resolution:
            image = np.asarray(Image.fromarray(image).resize((self.resolution,) * 2, Image.Resampling.LANCZOS))
        x = self.torch.from_numpy(np.require(image, requirements=("C", "W"))).permute(2, 0, 1)[None].float()
        return (x / 127.5 - 1.0).to(self.device)

    def invert(self, crop: np.ndarray, *, seed: int, steps: int, points: np.ndarray | None = None,
               progress: Callable[[float], None] | None = None, optimizer: str = "lbfgs", target: str = "photo",
               attributes: dict | None = None):
        """crop: uint8 [S,S,3] aligned face (points: float32 [68,2] its landmarks, to weight the face
        region; the proxy needs them) → latent ws [1,num_ws,w_dim] (W+) on ``self.device``; ``optimizer``:
        see :func:`face2emoticon.invert.invert`; ``target``: ``photo``, ``proxy`` or ``auto`` (see the class);
        ``attributes``: the user's settings of the proxy's attributes (ignored for a photo)."""
        from face2emoticon.invert import face_mask, invert

        mask = None
        if self.resolve_target(target) == "proxy":
            if points is None:
                raise EmogetError("the proxy is drawn from the face's landmarks: pass points")
            crop, person = self.proxy(crop, points, seed=seed, attributes=attributes)
            log.info("inverting the proxy of %s", person.attributes.values())
        elif points is not None:
            mask = face_mask(np.asarray(points), image_size=crop.shape[0], resolution=self.resolution)
        result = invert(self.invert_G, crop, class_index=self.class_index(self.invert_style), num_steps=steps,
                        encoder=self.encoder, mask=mask, optimizer=optimizer,
                        generator=self.torch.Generator().manual_seed(seed),
                        progress=(lambda step, total, *_: progress(step / max(total, 1))) if progress else None)
        ws = result.ws
        if ws.ndim == 2:
            ws = ws[:, None, :].repeat(1, self.invert_G.num_ws, 1)
        return ws.detach()

    def render(self, latent, style: str, *, strength: float, size: int, upscale: bool = True) -> np.ndarray:
        """latent from :meth:`invert` → uint8 [size,size,3] the person in ``style``.

        ``upscale``: when ``size`` exceeds the generator's resolution and an upscaler is loaded, the still is
        upscaled x4 (again while still smaller than ``size``) before the final Lanczos resize to ``size``.
        """
        from PIL import Image

        if style not in self.styles:
            raise OptionsError(f"unknown style {style!r}; choose one of {', '.join(self.styles)}")
        base = self.mean_w(self.invert_style, self.invert_G)[:, None, :]
        target = self.mean_w(style)[:, None, :]
        ws = target + (1.0 - strength) * (latent - base)
        with self.torch.no_grad():
            img = self.G.synthesis(ws, noise_mode="const")
        img = ((img[0].permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).round().byte().cpu().numpy()
        if upscale and self.upscaler is not None and size > img.shape[0]:
            from face2emoticon.upscale import upscale as sr

            while img.shape[0] < size:
                img = sr(self.upscaler, img)
        if img.shape[0] != size:
            img = np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.LANCZOS))
        return img


def load_stylizer(weights: str | None = None, device: str = "cpu", *, base: str | None = None,
                  blend_resolution: int = 32) -> GanStylizer:
    """The stylizer for ``weights``: a registry name, a path to our ``.safetensors`` (JSON config beside it),
    a ``train-gan`` run folder, a rosinality ``.pt`` or an NVlabs ``.pkl``; None = the shipped default
    generator (and its encoder).

    ``base``: network blending (Toonify) — the generator ``weights`` was fine-tuned from. The photo is
    inverted in the base; stills come from the blend of the two (blocks below ``blend_resolution`` from
    the base, the rest from ``weights``).
    """
    import weights as registry

    encoder = None
    if weights is None and DEFAULT_ENCODER in registry.load_registry():
        from face2emoticon.encoder import load_encoder

        encoder = load_encoder(registry.path_of(DEFAULT_ENCODER), device=device)
    G = _load_generator(weights or DEFAULT_GENERATOR, device)
    name = Path(weights).stem if weights and not G.cfg.class_names else "custom"
    upscaler = _load_upscaler(device)
    if base is None:
        return GanStylizer(G, encoder=encoder, device=device, name=name, upscaler=upscaler)
    from face2emoticon.blend import blend

    B = _load_generator(base, device)
    try:
        blended = blend(B, G, swap_resolution=blend_resolution, low_from="base", mapping_from="tuned")
    except ValueError as e:
        raise WeightsError(f"cannot blend {weights} with the base {base}: {e}") from e
    return GanStylizer(blended, device=device, invert_G=B, name=name, upscaler=upscaler)


def _load_upscaler(device: str):
    """The registry's x4 upscaler of stills, or None (then stills are Lanczos-resized) when it is not there."""
    import weights as registry

    if DEFAULT_UPSCALER not in registry.load_registry():
        return None
    from face2emoticon.upscale import load_upscaler

    try:
        return load_upscaler(registry.path_of(DEFAULT_UPSCALER), device=device)
    except WeightsError as e:
        log.warning("stills will be Lanczos-resized: %s", e)
        return None


@functools.cache
def load_vector_stylizer():
    """The vector stylizer: attributes read off the photo, drawn with each style's vector art (Node.js). One per
    process (it is thread-safe): ``--stylizer vector`` and the GAN's proxy share its Node.js renderer."""
    from face2emoticon.vector import VectorStylizer

    return VectorStylizer()


def _weights_path(weights: str) -> Path:
    """The file or run folder of generator ``weights``: a registry name or a path."""
    import weights as registry

    if weights in registry.load_registry():
        return registry.path_of(weights)
    path = Path(weights).expanduser()
    if not path.exists():
        raise EmogetError(f"weights {weights!r} not found: give a registry name (see `emoget weights list`) "
                          "or the path of a .safetensors, .pt or .pkl generator or a train-gan run folder")
    return path


def listed_styles(options: RenderOptions) -> list[str] | None:
    """The styles ``options``' stylizer draws, read without loading a model: the vector style list, or the
    ``class_names`` in the JSON config beside our generator weights. None when only loading tells (a
    foreign format, a blend, a config that cannot be read)."""
    if options.stylizer == "vector":
        from face2emoticon.styles import STYLE_NAMES

        return list(STYLE_NAMES)
    if options.base_weights is not None:
        return None
    path = _weights_path(options.weights or DEFAULT_GENERATOR)
    if path.is_dir():
        path = path / "G_ema.safetensors"
    if path.suffix != ".safetensors":
        return None
    try:
        names = json.loads(path.with_suffix(".json").read_text())["config"]["class_names"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(names, list):
        return None
    # As load_stylizer names them: an unconditional generator is one style, named after its file.
    return [str(n) for n in names] or [Path(options.weights).stem if options.weights else "custom"]


def _load_generator(weights: str, device: str):
    """A generator from a registry name or a path (our format, a run folder, rosinality .pt, NVlabs .pkl)."""
    from face2emoticon.foreign import load_any_generator

    path = _weights_path(weights)
    try:
        return load_any_generator(path, device=device)
    except (OSError, KeyError, ValueError, RuntimeError) as e:
        if isinstance(e, EmogetError):
            raise
        raise WeightsError(f"could not read generator weights {path}: {e}. Give our .safetensors (with its "
                           ".json), a rosinality stylegan2-pytorch .pt or an NVlabs stylegan2-ada/3 .pkl") from e


# --------------------------------------------------------------------------- cache


def image_digest(image: np.ndarray) -> str:
    """sha256 of an image's pixels and shape (not of its file: re-encoding the same pixels hits the cache)."""
    h = hashlib.sha256(repr((image.shape, str(image.dtype))).encode())
    h.update(np.ascontiguousarray(image).data)
    return h.hexdigest()


class LatentCache:
    """A small thread-safe LRU of detected faces and inverted latents, keyed per photo and inversion options."""

    def __init__(self, max_items: int = 32):
        self.max_items = max_items
        self._items: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple) -> Any | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item

    def put(self, key: tuple, item: Any) -> None:
        with self._lock:
            self._items[key] = item
            self._items.move_to_end(key)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


# --------------------------------------------------------------------------- files


_PART = ".part"
# atomic_write's temporary names: tempfile.mkstemp puts 8 characters of [a-z0-9_] between its prefix and suffix.
_PARTIAL_NAME = re.compile(r"\..+\.[a-z0-9_]{8}" + re.escape(_PART) + r"(\.[^.]*)?")


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` on a temporary name beside ``path`` (same suffix), then rename it into place.

    A crash mid-write leaves only a ``.*.part*`` file, never a half-written ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f"{_PART}{path.suffix}")
    os.close(fd)
    tmp = Path(tmp)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def is_partial(path: Path) -> bool:
    """Whether ``path`` is a temporary file left by an interrupted :func:`atomic_write`: exactly
    ``.<stem>.<8 random characters>.part<suffix>`` (never a user's file such as ``.participants.gif``)."""
    return _PARTIAL_NAME.fullmatch(Path(path).name) is not None


def output_name(stem: str, style: str, expression: str, ext: str) -> str:
    return f"{stem}_{style}_{expression}.{ext}"


# --------------------------------------------------------------------------- pipeline


class _Timer:
    def __init__(self, progress: ProgressFn | None):
        self.timings = {s: 0.0 for s in STAGES}
        self.progress = progress

    def report(self, stage: str, fraction: float) -> None:
        if self.progress is not None:
            self.progress(stage, float(min(max(fraction, 0.0), 1.0)))

    def run(self, stage: str, fn: Callable[..., Any], *args, done: float = 1.0, **kwargs):
        """Time ``fn(*args, **kwargs)`` under ``stage``; report ``done`` (the stage's fraction finished) after."""
        if done >= 1.0:
            self.report(stage, 0.0)
        t0 = time.perf_counter()
        result = fn(*args, **kwargs)
        self.timings[stage] += time.perf_counter() - t0
        self.report(stage, done)
        return result


class Pipeline:
    """Photo in, animations out. Holds the loaded models (one per weights/device) and a latent cache.

    Thread-safe for concurrent :meth:`render` calls (the page serves several users from one
    process); pass ``cache=`` per user to keep each user's latents to themselves.
    """

    def __init__(self, *, stages: Stages | None = None, cache: LatentCache | None = None):
        self._stages = stages
        self.injected = stages is not None  # stand-in stages (tests) rather than the real ones
        self.cache = cache if cache is not None else LatentCache()
        self._stylizers: dict[tuple, Any] = {}
        self._lock = threading.Lock()

    @property
    def stages(self) -> Stages:
        if self._stages is None:
            self._stages = default_stages()
        return self._stages

    def stylizer(self, options: RenderOptions | None = None):
        """The (cached) stylizer for these options' weights and device."""
        options = options or RenderOptions()
        key = options.stylizer_key()
        with self._lock:
            if key not in self._stylizers:
                t0 = time.perf_counter()
                # The stylizer alone needs only face2emoticon: don't require every stage to list styles.
                vector = load_vector_stylizer if self._stages is None else self._stages.vector_stylizer
                if options.stylizer == "vector" and vector is not None:
                    self._stylizers[key] = vector()
                else:
                    make = self._stages.stylizer if self._stages is not None else load_stylizer
                    blending = {} if options.base_weights is None else {
                        "base": options.base_weights, "blend_resolution": options.blend_resolution}
                    self._stylizers[key] = make(options.weights, options.device, **blending)
                log.info("loaded stylizer %s in %.2f s", key, time.perf_counter() - t0)
            return self._stylizers[key]

    def styles(self, options: RenderOptions | None = None) -> list[str]:
        """The styles of ``options``' stylizer (loads it)."""
        return list(self.stylizer(options).styles)

    def resolve_styles(self, options: RenderOptions) -> tuple[str, ...]:
        """``options.styles`` checked against the stylizer's (default: its first style). Reads the names from
        the weights' config when it can, so listing work loads no model."""
        with self._lock:
            loaded = self._stylizers.get(options.stylizer_key())
        known = list(loaded.styles) if loaded is not None else None
        if known is None and not self.injected:
            known = listed_styles(options)
        if known is None:
            known = self.styles(options)
        if not options.styles:
            return (known[0],)
        for s in options.styles:
            if s not in known:
                raise OptionsError(f"unknown style {s!r}; choose one of {', '.join(known)} (see `emoget styles`)")
        return options.styles

    def load(self, photo, *, name: str | None = None) -> np.ndarray:
        """A photo as uint8 [H,W,3]: a path, bytes, a file object or an array already loaded.

        ``name`` names a photo given as bytes in error messages (e.g. the upload's file name).
        """
        if isinstance(photo, np.ndarray):
            if photo.ndim != 3 or photo.shape[2] != 3 or photo.dtype != np.uint8:
                raise OptionsError(f"expected a uint8 [H,W,3] RGB array, got {photo.dtype} {photo.shape}")
            return photo
        if name is not None:
            return self.stages.load_image(photo, name=name)
        return self.stages.load_image(photo)

    def crop(self, image: np.ndarray, face, *, size: int = 256) -> np.ndarray:
        """uint8 [size,size,3]: the aligned face crop the pipeline animates."""
        return self.stages.align(image, face.points, size=size).image

    def render(self, photo, *, options: RenderOptions | None = None, output: str | os.PathLike | None = None,
               progress: ProgressFn | None = None, cache: LatentCache | None = None) -> PipelineResult:
        """Run every stage for each style × expression of ``options``.

        ``photo``: a path, bytes, file object or uint8 [H,W,3] RGB array.
        ``output``: a file name (one style and expression; its suffix picks the format) or a folder
        (files named ``<photo>_<style>_<expression>.<format>``); None writes nothing.
        ``progress(stage, fraction)``: called with each stage's name and its progress in [0,1].
        ``cache``: the latent cache to use (default: the pipeline's own).
        """
        options = options or RenderOptions()
        cache = cache if cache is not None else self.cache
        timer = _Timer(progress)
        st = self.stages
        stylizer = self.stylizer(options)
        styles = self.resolve_styles(options)
        targets = self._targets(photo, options, styles, output)

        image = self.load(photo)
        face, face_cached = self._face(image, options, cache, timer)
        latent, cached = self._latent(image, face, options, cache, timer)
        aligned = timer.run("align", st.align, image, face.points, size=options.size)
        points = np.asarray(aligned.points, dtype=np.float32)

        clips = []
        n = len(styles) * len(options.expressions)
        for si, style in enumerate(styles):
            still = timer.run("stylize", stylizer.render, latent, style, strength=options.strength,
                              size=options.size, upscale=options.upscale, done=(si + 1) / len(styles))
            # The still's own face geometry when the stylizer knows it (cartoon faces differ from the photo's).
            style_points = getattr(stylizer, "points", None)
            still_points = style_points(style, options.size) if style_points is not None else None
            still_points = points if still_points is None else np.asarray(still_points, dtype=np.float32)
            for ei, expression in enumerate(options.expressions):
                i = si * len(options.expressions) + ei
                done = (i + 1) / n
                peak = timer.run("stylize", self._peak, stylizer, latent, style, expression, options, done=done)
                anim = timer.run("animate", st.animate, still, still_points, expression=expression,
                                 intensity=options.intensity, frames=options.frames, fps=options.fps,
                                 seed=options.seed, done=done, **peak)
                frames, alpha = timer.run("compose", self._compose, anim.frames, image, aligned, options, done=done)
                clip = Clip(style=style, expression=expression, still=still, points=still_points,
                            frames=frames, fps=float(anim.fps), alpha=alpha)
                if targets is not None:
                    clip.file = timer.run("export", self._export, clip, targets[i], options, done=done)
                clips.append(clip)
        log.info("rendered %d clip(s): %s", len(clips),
                 ", ".join(f"{k} {v:.2f}s" for k, v in timer.timings.items() if v))
        return PipelineResult(image=image, landmarks=np.asarray(face.points, dtype=np.float32),
                              box=tuple(float(v) for v in face.box), crop=aligned.image, clips=clips,
                              timings=timer.timings, cached=cached and face_cached)

    def face(self, image: np.ndarray, *, options: RenderOptions | None = None, cache: LatentCache | None = None):
        """The face the pipeline will use (``points [68,2]``, ``box``, ...), from the cache when it can."""
        options = options or RenderOptions()
        return self._face(image, options, cache if cache is not None else self.cache, _Timer(None))[0]

    def latent(self, image: np.ndarray, face, *, options: RenderOptions | None = None,
               cache: LatentCache | None = None, progress: ProgressFn | None = None):
        """The inverted latent of ``image``'s ``face`` (cached per photo and inversion options)."""
        options = options or RenderOptions()
        return self._latent(image, face, options, cache if cache is not None else self.cache, _Timer(progress))[0]

    def thumbnail(self, latent, style: str, *, options: RenderOptions | None = None, size: int = 96) -> np.ndarray:
        """uint8 [size,size,3]: the person of ``latent`` in ``style`` (for a gallery)."""
        options = options or RenderOptions()
        return self.stylizer(options).render(latent, style, strength=options.strength, size=size,
                                             upscale=options.upscale)

    def warm(self, options: RenderOptions | None = None) -> None:
        """Load every model a render of ``options`` uses and run each once on a blank grey face: the
        detector, the stylizer (an inversion with no optimisation steps and one still; for the vector
        stylizer this starts its renderer) and the motion model. The first photo then pays no loading."""
        options = options or RenderOptions()
        st = self.stages
        stylizer = self.stylizer(options)
        style = self.resolve_styles(options)[0]
        blank = np.full((stylizer.resolution, stylizer.resolution, 3), 128, np.uint8)
        try:
            st.detect(blank, backend=options.landmark_backend)
        except EmogetError:
            pass  # no face in a blank image; the detector is loaded all the same
        points_of = getattr(stylizer, "points", None)
        points = points_of(style, stylizer.resolution) if points_of is not None else None
        latent = stylizer.invert(blank, seed=options.seed, steps=0, points=points)
        resolve = getattr(stylizer, "resolve_target", None)
        if resolve is not None and resolve(options.invert_target) == "proxy":
            from face2emoticon.attributes import Attributes
            from face2emoticon.vector import Person

            someone = Attributes(skin=0, hair_colour="brown", hair_length="short", glasses=False, beard=False)
            stylizer.vector.render(Person(someone), stylizer.invert_style, size=64)  # starts the proxy's Node.js
        still = stylizer.render(latent, style, strength=options.strength, size=options.size, upscale=options.upscale)
        still_points = points_of(style, options.size) if points_of is not None else None
        if still_points is not None:
            st.animate(still, np.asarray(still_points, dtype=np.float32), expression=options.expressions[0],
                       intensity=options.intensity, frames=2, fps=options.fps, seed=options.seed)

    def expressions(self) -> list[str]:
        """The expression names the motion stage offers."""
        if self._stages is not None and self._stages.expressions is not None:
            return list(self._stages.expressions())
        return available_expressions()

    def _face(self, image, options: RenderOptions, cache: LatentCache, timer: _Timer):
        key = ("face", image_digest(image), options.landmark_backend, options.face_index)
        face = cache.get(key)
        if face is not None:
            timer.report("detect", 1.0)
            return face, True
        face = timer.run("detect", self.stages.detect, image, backend=options.landmark_backend,
                         face_index=options.face_index)
        cache.put(key, face)
        return face, False

    def _latent(self, image, face, options: RenderOptions, cache: LatentCache, timer: _Timer):
        key = ("latent", image_digest(image), *options.inversion_key())
        latent = cache.get(key)
        if latent is not None:
            timer.report("invert", 1.0)
            return latent, True
        stylizer = self.stylizer(options)
        size = getattr(stylizer, "align_size", stylizer.resolution)
        small = timer.run("align", self.stages.align, image, face.points, size=size)
        overrides = options.attribute_overrides()
        extra, default_steps = {}, PHOTO_STEPS
        if hasattr(stylizer, "resolve_target"):  # the GAN: a photo or its proxy, with the user's attributes
            extra = {"target": stylizer.resolve_target(options.invert_target), "attributes": overrides}
            default_steps = PROXY_STEPS if extra["target"] == "proxy" else PHOTO_STEPS
        steps = default_steps if options.invert_steps is None else options.invert_steps
        latent = timer.run("invert", stylizer.invert, small.image, seed=options.seed, steps=steps,
                           points=small.points, progress=lambda f: timer.report("invert", f),
                           optimizer=options.invert_optimizer, **extra)
        if overrides and hasattr(stylizer, "override"):
            latent = stylizer.override(latent, **overrides)
        cache.put(key, latent)
        return latent, False

    # ----------------------------------------------------------------- helpers

    @staticmethod
    def _peak(stylizer, latent, style: str, expression: str, options: RenderOptions) -> dict:
        """``{"peak": still}`` when the stylizer draws ``expression`` itself (the animation blends into it)."""
        variants = getattr(stylizer, "expression_variants", None)
        if variants is None or expression not in variants(style):
            return {}
        return {"peak": stylizer.render(latent, style, strength=options.strength, size=options.size,
                                        expression=expression)}

    def _targets(self, photo, options: RenderOptions, styles: Sequence[str], output) -> list[Path] | None:
        if output is None:
            return None
        output = Path(output)
        n = len(styles) * len(options.expressions)
        if output.suffix.lower().lstrip(".") in FORMATS:
            if n != 1:
                raise OptionsError(f"{n} animations requested but one output file given ({output}); "
                                   "give a folder instead")
            return [output]
        stem = Path(photo).stem if isinstance(photo, (str, os.PathLike)) else "emoticon"
        ext = self.extension(options)
        return [output / output_name(stem, s, e, ext) for s in styles for e in options.expressions]

    @staticmethod
    def extension(options: RenderOptions) -> str:
        """The file suffix (no dot) for ``options``: its format, or the preset's default when the preset
        does not accept that format."""
        if options.preset:
            from video_gen.presets import PRESETS

            if options.preset not in PRESETS:
                raise OptionsError(f"unknown preset {options.preset!r}; choose one of {', '.join(PRESETS)}")
            accepted = [f.lstrip(".") for f in PRESETS[options.preset].formats]
            return options.format if options.format in accepted else accepted[0]
        return options.format

    def _compose(self, frames, image, aligned, options: RenderOptions):
        """Optional paste-back into the photo and transparent background. frames: uint8 [T,S,S,3]."""
        st = self.stages
        frames = np.asarray(frames)
        if options.paste_back:
            frames = np.stack([st.paste_back(f, image, aligned.transform) for f in frames])
        alpha = None
        if options.transparent:
            alpha = _as_alpha(st.alpha_matte(frames))  # the whole clip: one matting decision, no flicker
        return frames, alpha

    def _export(self, clip: Clip, path: Path, options: RenderOptions) -> Path:
        return self.export(clip, path, preset=options.preset)

    def export(self, clip: Clip, path: str | os.PathLike, *, preset: str | None = None) -> Path:
        """Write ``clip`` to ``path`` (its suffix picks the format) through a temporary name."""
        def write(tmp: Path):
            self.stages.save_animation(clip.frames, tmp, fps=clip.fps, preset=preset, alpha=clip.alpha)

        return atomic_write(path, write)


def _as_alpha(matte: np.ndarray) -> np.ndarray:
    """A clip's matte as uint8 [T,H,W] (255 = foreground), whether it came as float [0,1] or uint8."""
    matte = np.asarray(matte)
    if matte.ndim == 4:  # [T,H,W,1]
        matte = matte[..., 0]
    if matte.dtype != np.uint8:
        matte = np.clip(np.rint(matte.astype(np.float32) * 255), 0, 255).astype(np.uint8)
    return matte


_default: Pipeline | None = None
_default_lock = threading.Lock()


def default_pipeline() -> Pipeline:
    """The process-wide pipeline with the real stages (models load on first use, once)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Pipeline()
        return _default


def render(photo, *, options: RenderOptions | None = None, output=None, progress: ProgressFn | None = None,
           **option_fields) -> PipelineResult:
    """Python API: ``emoget.render("me.jpg", style="pixel", expression="happy", output="me.gif")``.

    Keyword options are :class:`RenderOptions` fields (``style``/``expression`` accepted for one each).
    """
    if "style" in option_fields:
        option_fields["styles"] = option_fields.pop("style")
    if "expression" in option_fields:
        option_fields["expressions"] = option_fields.pop("expression")
    options = (options or RenderOptions()).replace(**option_fields) if option_fields else options
    return default_pipeline().render(photo, options=options, output=output, progress=progress)


# --------------------------------------------------------------------------- listings


def available_expressions() -> list[str]:
    """Names of the expressions the motion stage offers, in its registry's order."""
    from video_gen.expressions import EXPRESSIONS

    return list(EXPRESSIONS)


def describe_expressions() -> list[dict[str, str]]:
    from video_gen.expressions import EXPRESSIONS

    return [{"name": name, "description": str(getattr(e, "description", "") or "")} for name, e in EXPRESSIONS.items()]


def describe_styles(*, weights: str | None = None, pipeline: Pipeline | None = None) -> list[dict[str, Any]]:
    """The styles of the generator (``weights``; default the shipped one), with their art's licence.

    Each row: ``name``, ``title``, ``description``, ``licence``, ``available`` (whether the
    generator can render it). If the generator cannot be loaded, the style registry is listed
    with ``available`` False.
    """
    from face2emoticon.styles import STYLES

    known = {s.name: s for s in STYLES}
    try:
        names = (pipeline or default_pipeline()).styles(RenderOptions(weights=weights))
        available = True
    except EmogetError as exc:
        log.warning("cannot load the generator (%s); listing the style registry", exc)
        names, available = list(known), False
    rows = []
    for name in names:
        s = known.get(name)
        rows.append({"name": name, "title": s.title if s else name,
                     "description": s.description if s else "a style of the given weights",
                     "licence": s.attribution if s else "set by whoever made the weights",
                     "available": available})
    return rows


# --------------------------------------------------------------------------- CLI flags


def add_option_arguments(parser, *, exclude: Sequence[str] = ()) -> None:
    """Add one ``--flag`` per :class:`RenderOptions` field (the single source of the CLI's render options)."""
    for f in dataclasses.fields(RenderOptions):
        if f.name in exclude:
            continue
        flag = "--" + f.metadata.get("flag", f.name).replace("_", "-")
        help_ = f.metadata["help"]
        if f.type in ("bool", bool) and f.default:
            parser.add_argument("--no-" + flag[2:], dest=f.name, action="store_false", default=None,
                                help=f"{help_} (default: on; this flag turns it off)")
        elif f.type in ("bool", bool):
            parser.add_argument(flag, dest=f.name, action="store_true", help=help_)
        elif f.name in ("styles", "expressions"):
            plural = "--" + f.name
            default = ",".join(f.default) if f.default else "default"
            parser.add_argument(flag, plural, dest=f.name, type=_csv, default=None,
                                help=f"{help_}; comma-separated for several (default: {default})")
        else:
            kind = {"float": float, "int": int, "bool": _yes_no}.get(str(f.type).split(" ")[0], str)
            if f.name == "face_index":
                kind = int
            shown = "" if "(default:" in help_ else f" (default: {f.default})"
            parser.add_argument(flag, dest=f.name, type=kind, default=None, help=help_ + shown)


def _yes_no(text: str) -> bool:
    t = text.strip().lower()
    if t in ("yes", "y", "true", "1", "on"):
        return True
    if t in ("no", "n", "false", "0", "off"):
        return False
    raise ValueError(f"expected yes or no, got {text!r}")


def _csv(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",") if s.strip())


def options_from_args(args, **overrides) -> RenderOptions:
    """A :class:`RenderOptions` from parsed flags; flags left unset keep the dataclass defaults."""
    values = {}
    for f in dataclasses.fields(RenderOptions):
        v = getattr(args, f.name, None)
        if v is not None and not (v is False and f.default is False):  # --no-X flags give False
            values[f.name] = v
    values.update(overrides)
    return RenderOptions(**values)
