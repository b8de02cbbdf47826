"""Write animations to files: GIF, animated WebP, APNG, MP4 (H.264) and WebM (VP9).

``save_animation(frames, path, *, fps, ...)`` picks the format from the suffix.

* GIF: one global palette shared by every frame (chosen once from all frames, so
  nothing flickers), no per-frame dithering, loop forever by default, and frame
  delays whose running sum tracks ``k / fps`` exactly to the GIF's 10 ms grid
  (12 fps → 80, 90, 80, 80, 90, 80 ... ms, never drifting). Transparency uses one
  reserved palette index.
* WebP / APNG: full colour with 8-bit alpha, millisecond delays.
* MP4: H.264 yuv420p through the ffmpeg that imageio-ffmpeg ships; transparency is
  composited onto ``background``.
* WebM: VP9 (with alpha, yuva420p) for Telegram video stickers.

With ``preset=`` the frames are first fitted to a platform's limits
(:mod:`video_gen.presets`), then re-encoded with fewer colours / lower quality /
fewer frames / fewer pixels until the file is under the platform's byte cap.
:func:`inspect` reads a file back (frame count, delays, loop, palettes) so tests
and callers can check what was written.
"""
from __future__ import annotations

import itertools
import logging
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from landmarks.errors import EmogetError

log = logging.getLogger(__name__)

FORMATS = {".gif": "gif", ".webp": "webp", ".png": "apng", ".apng": "apng", ".mp4": "mp4", ".webm": "webm"}


class ExportError(EmogetError):
    """An animation could not be written as asked."""


@dataclass
class EncodeOptions:
    """Knobs the preset fitter turns; defaults give the best quality."""

    colors: int = 256  # GIF palette size (incl. the transparent index)
    quality: int = 90  # WebP quality 0-100
    crf: int = 20  # H.264 / VP9 constant-rate factor (lower = better)
    lossless: bool = False  # WebP lossless
    apng_palette: bool = False  # APNG as 8-bit palette frames (``colors`` entries) instead of full RGBA
    draft: bool = False  # MP4 / WebM: a fast, rougher encode (x264 ultrafast, VP9 realtime) to size the real one
    extra: dict = field(default_factory=dict)


def frame_delays(n: int, fps: float, *, grid_ms: int = 1) -> list[int]:
    """Per-frame delays (ms, multiples of ``grid_ms``) whose running sum is ``round(k * 1000 / fps)``.

    The total is exact to the grid and no frame is more than one grid step off.
    """
    if fps <= 0:
        raise ExportError(f"fps must be positive, got {fps}")
    ticks = [round(k * 1000.0 / fps / grid_ms) for k in range(n + 1)]
    return [max(1, b - a) * grid_ms for a, b in itertools.pairwise(ticks)]


def _as_rgba(frames, alpha) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    rgb, alphas = [], []
    for i, f in enumerate(frames):
        f = np.asarray(f)
        if f.dtype != np.uint8 or f.ndim != 3 or f.shape[2] not in (3, 4):
            raise ExportError(f"frame {i} must be uint8 [H,W,3|4], got {f.dtype} {f.shape}")
        rgb.append(np.ascontiguousarray(f[..., :3]))
        if f.shape[2] == 4:
            alphas.append(f[..., 3])
    if not rgb:
        raise ExportError("no frames to save")
    if len({f.shape for f in rgb}) != 1:
        raise ExportError("all frames must have the same size")
    if alpha is not None:
        a = np.asarray(alpha, dtype=np.float32)
        if a.ndim == 2:
            a = np.broadcast_to(a, (len(rgb), *a.shape))
        if a.shape != (len(rgb), *rgb[0].shape[:2]):
            raise ExportError(f"alpha must be [H,W] or [T,H,W] matching the frames, got {a.shape}")
        if a.max() <= 1.0:
            a = a * 255.0
        alphas = [np.clip(x + 0.5, 0, 255).astype(np.uint8) for x in a]
    return rgb, (alphas if alphas else None)


def save_animation(frames, path, *, fps: float, preset=None, alpha=None, loop: int = 0,
                   transparent: bool = False, background=(255, 255, 255),
                   options: EncodeOptions | None = None) -> Path:
    """Write ``frames`` (list of ``uint8 [H,W,3]`` or ``[H,W,4]``) to ``path``; the suffix picks the format.

    Args:
        fps: frames per second (> 0).
        preset: a name in :data:`video_gen.presets.PRESETS` (or a ``Preset``): resize, trim and
            compress until the platform's limits hold; the suffix must be one the preset accepts.
        alpha: optional opacity, ``[H,W]`` or ``[T,H,W]`` in [0,1] (or 0-255).
        loop: times to repeat, 0 = forever (GIF / WebP / APNG).
        transparent: when no alpha is given and the frames are RGB, cut the background out with
            :func:`video_gen.matte.alpha_matte` of the clip.
        background: RGB used where a format has no alpha (MP4).
        options: encoder knobs (:class:`EncodeOptions`).
    Returns the path written.
    """
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ExportError(f"unknown animation format {path.suffix!r}; use one of {', '.join(sorted(FORMATS))}")
    frames = list(frames)
    if transparent and alpha is None and np.asarray(frames[0]).shape[-1] == 3:
        from video_gen.matte import alpha_matte

        alpha = alpha_matte(np.stack([np.asarray(f) for f in frames]))
    rgb, alphas = _as_rgba(frames, alpha)
    if preset is not None:
        from video_gen.presets import fit_and_save

        return fit_and_save(rgb, alphas, path, fps=fps, preset=preset, loop=loop, background=background)
    path.parent.mkdir(parents=True, exist_ok=True)
    encode(rgb, alphas, path, fmt=fmt, fps=fps, loop=loop, background=background, options=options or EncodeOptions())
    return path


def encode(rgb: list[np.ndarray], alphas: list[np.ndarray] | None, path: Path, *, fmt: str, fps: float, loop: int,
           background=(255, 255, 255), options: EncodeOptions) -> None:
    """Write already-validated frames; see :func:`save_animation`."""
    writer = {"gif": _write_gif, "webp": _write_webp, "apng": _write_apng, "mp4": _write_mp4, "webm": _write_webm}[fmt]
    tmp = path.with_name(path.name + ".part")
    try:
        writer(rgb, alphas, tmp, fps=fps, loop=loop, background=background, options=options)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


# -- GIF ---------------------------------------------------------------------------------------------------------------
def shared_palette(rgb: list[np.ndarray], colors: int, *, max_pixels: int = 1 << 18) -> Image.Image:
    """One ``P``-mode palette image with ``colors`` entries chosen from all frames."""
    stack = np.concatenate([f.reshape(-1, 3) for f in rgb])
    if len(stack) > max_pixels:
        stack = stack[:: int(np.ceil(len(stack) / max_pixels))]
    side = int(np.ceil(np.sqrt(len(stack))))
    pad = np.zeros((side * side - len(stack), 3), np.uint8)
    pad[:] = stack[0]
    sheet = Image.fromarray(np.concatenate([stack, pad]).reshape(side, side, 3))
    return sheet.quantize(colors=max(2, min(256, colors)), method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)


def palette_frames(rgb: list[np.ndarray], alphas: list[np.ndarray] | None,
                   colors: int) -> tuple[list[Image.Image], list[int], int | None]:
    """Frames as ``P``-mode images sharing one palette of at most ``colors`` entries.

    With ``alphas``, one entry is kept for transparency (pixels with alpha < 128). Returns
    ``(images, palette [3*K] RGB values, transparent index or None)``.
    """
    colors = max(2, min(256, colors))
    n_used = colors - 1 if alphas is not None else colors
    pal = shared_palette(rgb, n_used)
    palette = pal.getpalette()[: 3 * n_used]
    transparent = None
    if alphas is not None:  # the palette must reach the transparent index, or PNG drops it from tRNS
        transparent = n_used
        palette += [0, 0, 0] * (n_used + 1 - len(palette) // 3)
    images = []
    for i, f in enumerate(rgb):
        q = np.asarray(Image.fromarray(f).quantize(palette=pal, dither=Image.Dither.NONE)).copy()
        if transparent is not None:
            q[alphas[i] < 128] = transparent
        im = Image.fromarray(q, mode="P")
        im.putpalette(palette)
        images.append(im)
    return images, palette, transparent


def _write_gif(rgb, alphas, path, *, fps, loop, background, options):
    images, palette, transparent = palette_frames(rgb, alphas, options.colors)
    delays = frame_delays(len(images), fps, grid_ms=10)
    # ``palette=`` makes PIL write one global colour table and no local ones.
    # Identical consecutive frames are merged by PIL (their delays add up), so timing stays exact.
    kw = {"save_all": True, "append_images": images[1:], "duration": delays, "optimize": False, "palette": bytes(palette),
              "disposal": 2 if alphas is not None else 1}
    if loop is not None:
        kw["loop"] = loop
    if transparent is not None:
        kw["transparency"] = transparent
    images[0].save(path, format="GIF", **kw)


# -- WebP / APNG -------------------------------------------------------------------------------------------------------
def _pil_frames(rgb, alphas):
    if alphas is None:
        return [Image.fromarray(f) for f in rgb]
    return [Image.fromarray(np.dstack([f, a])) for f, a in zip(rgb, alphas)]


def _write_webp(rgb, alphas, path, *, fps, loop, background, options):
    ims = _pil_frames(rgb, alphas)
    ims[0].save(path, format="WEBP", save_all=True, append_images=ims[1:], duration=frame_delays(len(ims), fps),
                loop=loop, quality=options.quality, lossless=options.lossless, method=4, minimize_size=False,
                allow_mixed=False)


def _write_apng(rgb, alphas, path, *, fps, loop, background, options):
    from PIL import PngImagePlugin

    kw = {}
    if options.apng_palette:  # palette APNG: far smaller, used by the LINE fitter
        ims, _, transparent = palette_frames(rgb, alphas, options.colors)
        if transparent is not None:
            kw["transparency"] = transparent
    else:
        ims = _pil_frames(rgb, alphas)
    # Each frame replaces its region outright (OP_SOURCE, transparent pixels included), so nothing needs
    # clearing between frames; OP_BACKGROUND would also break Pillow's delta of palette frames.
    ims[0].save(path, format="PNG", save_all=True, append_images=ims[1:], duration=frame_delays(len(ims), fps),
                loop=loop, default_image=False, disposal=PngImagePlugin.Disposal.OP_NONE,
                blend=PngImagePlugin.Blend.OP_SOURCE, optimize=True, **kw)


# -- video ---------------------------------------------------------------------------------------------------------------
def _even(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def _ffmpeg_write(frames: list[np.ndarray], path: Path, *, fps, codec, pix_fmt_in, pix_fmt_out, params):
    import imageio_ffmpeg

    h, w = frames[0].shape[:2]
    fmt = "mp4" if codec == "libx264" else "webm"
    gen = imageio_ffmpeg.write_frames(str(path), (w, h), fps=fps, codec=codec, pix_fmt_in=pix_fmt_in,
                                      pix_fmt_out=pix_fmt_out, macro_block_size=1, quality=None,
                                      output_params=["-f", fmt, *params], ffmpeg_log_level="error")
    gen.send(None)
    for f in frames:
        gen.send(np.ascontiguousarray(f))
    gen.close()


def _write_mp4(rgb, alphas, path, *, fps, loop, background, options):
    if alphas is not None:
        bg = np.asarray(background, np.float32)
        rgb = [(f * (a[..., None] / 255.0) + bg * (1 - a[..., None] / 255.0) + 0.5).astype(np.uint8)
               for f, a in zip(rgb, alphas)]
    frames = [_even(f) for f in rgb]
    _ffmpeg_write(frames, path, fps=fps, codec="libx264", pix_fmt_in="rgb24", pix_fmt_out="yuv420p",
                  params=["-crf", str(options.crf), "-preset", "ultrafast" if options.draft else "medium",
                          "-movflags", "+faststart", "-an"])


def _write_webm(rgb, alphas, path, *, fps, loop, background, options):
    if alphas is None:
        frames = [_even(f) for f in rgb]
        pix_in, pix_out = "rgb24", "yuv420p"
    else:
        frames = [_even(np.dstack([f, a])) for f, a in zip(rgb, alphas)]
        pix_in, pix_out = "rgba", "yuva420p"
    _ffmpeg_write(frames, path, fps=fps, codec="libvpx-vp9", pix_fmt_in=pix_in, pix_fmt_out=pix_out,
                  params=["-crf", str(options.crf), "-b:v", "0", "-an", "-row-mt", "1",
                          "-deadline", "realtime" if options.draft else "good", "-cpu-used", "8" if options.draft else "4",
                          "-auto-alt-ref", "0"])


# -- reading back ----------------------------------------------------------------------------------------------------------
@dataclass
class FileInfo:
    """What :func:`inspect` found in an animation file."""

    format: str
    size: tuple[int, int]  # (width, height)
    n_frames: int
    durations_ms: list[float]
    loop: int | None  # 0 = forever, None = not a looping format / not set
    bytes: int
    global_palette: bool | None = None  # GIF: every frame uses the global colour table
    has_alpha: bool | None = None
    codec: str | None = None  # MP4 / WebM: the video codec (e.g. "vp9")

    @property
    def total_ms(self) -> float:
        return float(sum(self.durations_ms))


def inspect(path) -> FileInfo:
    """Read an animation back: frame count, per-frame delays, loop flag, size and (GIF) palette sharing."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    nbytes = path.stat().st_size
    if fmt == "gif":
        return _inspect_gif(path, nbytes)
    if fmt in ("mp4", "webm"):
        import imageio_ffmpeg

        reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24",
                                            output_params=["-fps_mode", "passthrough"])
        meta = reader.__next__()
        n = sum(1 for _ in reader)
        fps = float(meta.get("fps") or 0)
        w, h = meta["size"]
        return FileInfo(fmt, (w, h), n, [1000.0 / fps] * n if fps else [], None, nbytes, codec=meta.get("codec"))
    with Image.open(path) as im:
        n = getattr(im, "n_frames", 1)
        durations = []
        for k in range(n):
            im.seek(k)
            im.load()
            durations.append(float(im.info.get("duration", 0)))
        loop = im.info.get("loop")
        alpha = im.mode in ("RGBA", "LA") or "transparency" in im.info
        return FileInfo(fmt or im.format.lower(), im.size, n, durations, loop, nbytes, has_alpha=alpha)


def _inspect_gif(path: Path, nbytes: int) -> FileInfo:
    data = path.read_bytes()
    if data[:6] not in (b"GIF87a", b"GIF89a"):
        raise ExportError(f"{path} is not a GIF")
    w, h, flags = struct.unpack("<HHB", data[6:11])
    pos = 13 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)
    has_global = bool(flags & 0x80)
    durations, loop, local_tables, n, alpha = [], None, 0, 0, False
    pending_delay = 0
    while pos < len(data):
        tag = data[pos]
        if tag == 0x3B:  # trailer
            break
        if tag == 0x21:  # extension
            label = data[pos + 1]
            pos += 2
            blocks = []
            while data[pos]:
                blocks.append(data[pos + 1: pos + 1 + data[pos]])
                pos += 1 + data[pos]
            pos += 1
            if label == 0xF9 and blocks:
                pending_delay = struct.unpack("<H", blocks[0][1:3])[0] * 10
                alpha = alpha or bool(blocks[0][0] & 1)
            elif label == 0xFF and blocks and blocks[0][:8] == b"NETSCAPE" and len(blocks) > 1:
                loop = struct.unpack("<H", blocks[1][1:3])[0]
        elif tag == 0x2C:  # image
            iflags = data[pos + 9]
            pos += 10
            if iflags & 0x80:
                local_tables += 1
                pos += 3 * 2 ** ((iflags & 7) + 1)
            pos += 1  # LZW minimum code size
            while data[pos]:
                pos += 1 + data[pos]
            pos += 1
            durations.append(float(pending_delay))
            pending_delay = 0
            n += 1
        else:
            raise ExportError(f"{path}: unexpected GIF block 0x{tag:02x} at byte {pos}")
    return FileInfo("gif", (w, h), n, durations, loop, nbytes, global_palette=has_global and local_tables == 0,
                    has_alpha=alpha)
