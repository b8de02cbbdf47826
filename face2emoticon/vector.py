"""The vector stylizer: read the person's attributes off the photo, draw them with each style's vector art.

The style data was drawn from a parametric person (:class:`~face2emoticon.styledata.people.Identity`:
skin tone, hair colour and length, glasses, beard) with DiceBear and Twemoji. This stylizer closes the
loop without a network: :meth:`VectorStylizer.invert` estimates those attributes from the aligned photo
crop (:func:`face2emoticon.attributes.estimate`, no optimisation), and :meth:`VectorStylizer.render`
draws them in a style, crisp at any size and the same person in every style by construction. It also
draws the style's own face parts for an expression (:meth:`expression_variants`), and knows where each
style draws the eyes, brows and mouth (:meth:`points`, from :mod:`face2emoticon.style_landmarks`).

Rendering runs in one long-lived ``node`` process per stylizer (``styledata/serve.mjs``: JSON lines in,
base64 PNG out), behind a lock, with an LRU cache of the PNGs per (attributes, seed, style, expression,
size): thread-safe, and a still costs a few milliseconds once Node is up. Likeness is limited to what
the attributes carry (no face shape, no exact haircut); ``seed`` picks the haircut and clothes among
those that fit the attributes.
"""
from __future__ import annotations

import atexit
import base64
import io
import json
import logging
import os
import shutil
import subprocess
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from face2emoticon.attributes import Attributes, estimate
from face2emoticon.style_landmarks import style_points
from face2emoticon.styledata import NODE_DIR
from face2emoticon.styledata.options import render_job
from face2emoticon.styledata.people import EXPRESSIONS
from face2emoticon.styles import STYLE_NAMES, get_style
from landmarks.errors import EmogetError

log = logging.getLogger(__name__)

SERVER_SCRIPT = NODE_DIR / "serve.mjs"
NODE_HINT = ("install Node.js 18 or newer (with npm), then run `make setup` (it runs `npm ci` in "
             "face2emoticon/styledata), or pick the neural stylizer (--stylizer gan)")


class VectorRenderError(EmogetError):
    """The vector renderer could not run (Node.js or its packages missing) or a render failed."""


class UnknownStyle(EmogetError, ValueError):
    """A style the vector stylizer does not draw."""


@dataclass(frozen=True)
class Person:
    """The vector stylizer's latent: the attributes read off the photo and the seed for free choices."""

    attributes: Attributes
    seed: int = 0

    def key(self) -> tuple:
        return (*self.attributes.key(), self.seed)

    def replace(self, **overrides) -> Person:
        """The same person with some attributes set by the user (None keeps the photo's)."""
        return Person(self.attributes.replace(**overrides), self.seed)


class NodeRenderer:
    """One ``node serve.mjs`` process: :meth:`png` sends a job and waits for its PNG. Thread-safe."""

    def __init__(self, *, node: str = "node", node_dir: Path = NODE_DIR, timeout: float = 60.0):
        self.node = node
        self.node_dir = Path(node_dir)
        self.timeout = timeout
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._next = 0
        atexit.register(self.close)

    def _start(self) -> subprocess.Popen:
        exe = shutil.which(self.node) or (self.node if os.path.isfile(self.node) else None)
        if exe is None:
            raise VectorRenderError(f"Node.js ({self.node!r}) was not found: {NODE_HINT}")
        if not (self.node_dir / "node_modules" / "@dicebear" / "core").exists():
            raise VectorRenderError(f"the style packages are not installed in {self.node_dir}: {NODE_HINT}")
        try:
            proc = subprocess.Popen([exe, str(SERVER_SCRIPT)], cwd=self.node_dir, stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        except OSError as e:
            raise VectorRenderError(f"could not start Node.js ({exe}): {e}; {NODE_HINT}") from e
        first = proc.stdout.readline()
        if not first.strip().startswith('{"ready"'):
            err = proc.stderr.read()[-500:] if proc.poll() is not None else first
            proc.kill()
            raise VectorRenderError(f"the vector renderer did not start: {err.strip()}; {NODE_HINT}")
        log.info("started the vector renderer (node pid %d)", proc.pid)
        return proc

    def png(self, job: dict) -> bytes:
        """PNG bytes of one ``draw.mjs`` job (``size`` included)."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._proc = self._start()
            self._next += 1
            try:
                self._proc.stdin.write(json.dumps({**job, "id": self._next}) + "\n")
                self._proc.stdin.flush()
                line = self._proc.stdout.readline()
            except (BrokenPipeError, OSError) as e:
                self._proc = None
                raise VectorRenderError(f"the vector renderer stopped: {e}") from e
            if not line:
                self._proc = None
                raise VectorRenderError("the vector renderer stopped without an answer; try again")
        answer = json.loads(line)
        if not answer.get("ok"):
            raise VectorRenderError(f"render failed: {answer.get('error')}")
        return base64.b64decode(answer["png"])

    def close(self) -> None:
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                self._proc.stdin.close()
                try:
                    self._proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
            self._proc = None


class VectorStylizer:
    """The stylizer interface (``styles``, ``resolution``, ``invert``, ``render``) over the vector art.

    ``node``: the Node.js executable; ``cache_items``: how many rendered stills to keep.
    """

    def __init__(self, *, node: str = "node", node_dir: Path = NODE_DIR, cache_items: int = 256,
                 styles: tuple[str, ...] = STYLE_NAMES):
        self.styles = list(styles)
        self.resolution = 256
        self.renderer = NodeRenderer(node=node, node_dir=node_dir)
        self._cache: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._cache_items = cache_items
        self._lock = threading.Lock()

    def invert(self, crop: np.ndarray, *, seed: int = 0, steps: int = 0, points: np.ndarray | None = None,
               progress: Callable[[float], None] | None = None, optimizer: str | None = None) -> Person:
        """crop: uint8 [R,R,3] aligned face, points: float32 [68,2] its landmarks → :class:`Person`.

        ``steps`` and ``optimizer`` are ignored (nothing is optimised); ``seed`` picks haircut and clothes.
        """
        if points is None:
            raise EmogetError("the vector stylizer needs the face's landmarks to read its attributes")
        person = Person(estimate(crop, points), int(seed))
        if progress is not None:
            progress(1.0)
        log.info("attributes: %s", person.attributes.values())
        return person

    def override(self, latent: Person, **attributes) -> Person:
        """``latent`` with some attributes set by the user (None keeps what the photo showed)."""
        return latent.replace(**attributes)

    def expression_variants(self, style: str) -> tuple[str, ...]:
        """The expressions the style draws with its own face parts (the emoji style: none, its expression
        faces are other emoji, not the person)."""
        return () if get_style(style).kind == "emoji" else tuple(e for e in EXPRESSIONS if e != "neutral")

    def points(self, style: str, size: int) -> np.ndarray | None:
        """float32 [68,2]: where ``style`` draws the face parts in a ``size`` px still."""
        return style_points(style, size)

    def render(self, latent: Person | Attributes, style: str, *, strength: float = 0.0, size: int = 256,
               expression: str | None = None, upscale: bool = True) -> np.ndarray:
        """The person in ``style`` → uint8 [size,size,3]; ``expression``: one of the style's
        :meth:`expression_variants` (default: neutral). ``strength`` and ``upscale`` are ignored (the art is
        the style, drawn at ``size``)."""
        if style not in self.styles:
            raise UnknownStyle(f"unknown style {style!r}; choose one of {', '.join(self.styles)}")
        person = latent if isinstance(latent, Person) else Person(latent)
        expression = expression or "neutral"
        if expression != "neutral" and expression not in self.expression_variants(style):
            raise EmogetError(f"{style} has no drawn {expression!r} face; animate the neutral one")
        key = (person.key(), style, expression, int(size))
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit.copy()
        job = {**render_job(style, person.attributes.identity(seed=person.seed), expression), "size": int(size)}
        if job.get("emoji", "").startswith("man-") and not person.attributes.beard:
            # Attributes carry no gender: short hair draws Twemoji's gender-neutral person.
            job["emoji"] = "person-" + job["emoji"][len("man-"):]
        img = np.asarray(Image.open(io.BytesIO(self.renderer.png(job))).convert("RGB"))
        if img.shape[:2] != (size, size):  # the emoji viewBox is square; DiceBear's too, but be exact
            img = np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.LANCZOS))
        img.setflags(write=False)
        with self._lock:
            self._cache[key] = img
            while len(self._cache) > self._cache_items:
                self._cache.popitem(last=False)
        return img.copy()

    def close(self) -> None:
        self.renderer.close()
