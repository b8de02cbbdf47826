"""Sticker / emoji presets with each platform's published limits, and the fitter that meets them.

Sources (checked against each platform's own pages; byte caps are taken in
decimal kilobytes, the stricter reading, so a file passes whichever a platform uses):

* Discord custom emoji: "Emojis must be under 256KB in size"; emoji are shown from a
  128x128 upload. https://support.discord.com/hc/articles/360036479811-Custom-Emojis
* Slack custom emoji: square image, 128 KB or less, GIF for animation.
  https://slack.com/help/articles/206870177-Add-custom-emoji-and-aliases-to-your-workspace
* LINE animated stickers: APNG within 320x270 with one side at least 270 px, 5-20
  frames, 1-4 loops whose total playback is at most 4 s, at most 300 KB per image,
  transparent background. https://creator.line.me/en/guideline/animationsticker/
* Telegram video stickers: WebM with VP9, no audio, one side exactly 512 px (the other
  512 or less), at most 3 s, at most 30 fps, at most 256 KB, looping.
  https://core.telegram.org/stickers#video-stickers
* KakaoTalk animated emoticons (Emoticon Studio proposal guide): 360x360, GIF, at most
  2 MB per file, at most 24 frames. https://emoticonstudio.kakao.com/
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from video_gen.export import FORMATS, EncodeOptions, ExportError, encode

log = logging.getLogger(__name__)

FRAME_STEPS = (1, 2, 3, 4, 6)  # frame thinning the fitter tries, mildest first


@dataclass(frozen=True)
class Preset:
    """A platform's limits.

    ``box``: (width, height) the frames must fit inside; ``min_side``: the larger of the
    output's sides must reach at least this; ``exact``: the output must be exactly ``box``
    (padded with transparency / background when the aspect differs).
    """

    name: str
    description: str
    formats: tuple[str, ...]  # accepted suffixes; the first is the default
    box: tuple[int, int]
    max_bytes: int
    exact: bool = True
    min_side: int = 0
    min_frames: int = 1
    max_frames: int | None = None
    max_seconds: float | None = None
    max_fps: float | None = None
    integer_seconds: bool = False  # LINE: playback time of one loop is 1, 2, 3 or 4 s
    max_loops: int | None = None  # LINE: 1-4 loops, total playback <= max_seconds
    source: str = ""

    @property
    def default_suffix(self) -> str:
        return self.formats[0]

    @property
    def format(self) -> str:
        """The default file suffix (e.g. ``".gif"``)."""
        return self.formats[0]


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset("discord", "Discord custom emoji: 128x128, under 256 KB", (".gif", ".webp", ".png"), (128, 128),
               256_000, source="https://support.discord.com/hc/articles/360036479811-Custom-Emojis"),
        Preset("slack", "Slack custom emoji: 128x128, 128 KB or less", (".gif", ".png"), (128, 128), 128_000,
               source="https://slack.com/help/articles/206870177-Add-custom-emoji-and-aliases-to-your-workspace"),
        Preset("line", "LINE animated sticker: APNG within 320x270, 5-20 frames, <= 4 s, <= 300 KB", (".png", ".apng"),
               (320, 270), 300_000, exact=False, min_side=270, min_frames=5, max_frames=20, max_seconds=4.0,
               integer_seconds=True, max_loops=4,
               source="https://creator.line.me/en/guideline/animationsticker/"),
        Preset("telegram", "Telegram video sticker: WebM VP9, 512 px, <= 3 s, <= 30 fps, <= 256 KB", (".webm",),
               (512, 512), 256_000, exact=False, min_side=512, max_seconds=3.0, max_fps=30.0,
               source="https://core.telegram.org/stickers#video-stickers"),
        Preset("kakao", "KakaoTalk animated emoticon: 360x360 GIF, <= 2 MB, <= 24 frames", (".gif",), (360, 360),
               2_000_000, max_frames=24, source="https://emoticonstudio.kakao.com/"),
    ]
}


def get_preset(preset) -> Preset:
    if isinstance(preset, Preset):
        return preset
    if preset not in PRESETS:
        raise ExportError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[preset]


def target_size(src_wh: tuple[int, int], preset: Preset) -> tuple[tuple[int, int], tuple[int, int]]:
    """``(canvas (w,h), content (w,h))``: the content keeps the source's aspect inside the canvas.

    The size never depends on the byte cap: platforms reject stickers of the wrong size, so the
    fitter meets the cap with fewer colours, frames or a stronger compression instead.
    """
    w, h = src_wh
    bw, bh = preset.box
    s = min(bw / w, bh / h)
    cw, ch = max(1, round(w * s)), max(1, round(h * s))
    return ((bw, bh) if preset.exact else (cw, ch)), (cw, ch)


def fit_frames(rgb: list[np.ndarray], alphas: list[np.ndarray] | None, *, fps: float, preset: Preset,
               frame_step: int = 1, background=(255, 255, 255)):
    """Resize / pad / resample in time to the preset; ``frame_step`` keeps every n-th of the frames it would
    otherwise keep (never fewer than ``preset.min_frames``). Returns ``(rgb, alphas, fps, loops)``."""
    n = len(rgb)
    duration = n / fps
    if preset.max_seconds is not None and preset.max_loops is None and duration > preset.max_seconds:
        log.info("%s: %.2f s is longer than %.1f s; playing the loop faster", preset.name, duration, preset.max_seconds)
        duration = preset.max_seconds
    loops = 0
    if preset.integer_seconds:
        duration = float(min(max(1, round(duration)), preset.max_seconds or 4))
        loops = max(1, min(preset.max_loops or 1, int((preset.max_seconds or duration) // duration)))
    rate = min(fps, preset.max_fps or fps)
    count = max(1, math.floor(duration * rate + 1e-6))
    count = min(count, n) if not preset.integer_seconds else count
    if preset.max_frames:
        count = min(count, preset.max_frames)
    count = max(preset.min_frames, math.ceil(count / frame_step))
    if preset.max_frames:
        count = min(count, preset.max_frames)
    idx = np.floor(np.arange(count) * n / count).astype(int)  # whole cycle, evenly spaced: the loop still closes
    new_fps = count / duration
    (cw, ch), (w, h) = target_size(rgb[0].shape[1::-1], preset)
    x0, y0 = (cw - w) // 2, (ch - h) // 2
    out_rgb, out_a = [], []
    pad = (w, h) != (cw, ch)
    for i in idx:
        f = cv2.resize(rgb[i], (w, h), interpolation=cv2.INTER_AREA)
        a = cv2.resize(alphas[i], (w, h), interpolation=cv2.INTER_AREA) if alphas is not None else None
        if pad:
            canvas = np.empty((ch, cw, 3), np.uint8)
            canvas[:] = np.asarray(background, np.uint8)
            canvas[y0:y0 + h, x0:x0 + w] = f
            ca = np.zeros((ch, cw), np.uint8)
            ca[y0:y0 + h, x0:x0 + w] = 255 if a is None else a
            f, a = canvas, ca
        out_rgb.append(f)
        if a is not None:
            out_a.append(a)
    return out_rgb, (out_a if out_a else None), new_fps, loops


def _ladder(fmt: str) -> list[EncodeOptions]:
    if fmt == "gif":
        return [EncodeOptions(colors=c) for c in (256, 128, 64, 32, 16)]
    if fmt == "apng":
        return [EncodeOptions()] + [EncodeOptions(colors=c, apng_palette=True) for c in (256, 128, 64, 32)]
    if fmt == "webp":
        return [EncodeOptions(quality=q) for q in (90, 75, 60, 45, 30)]
    return [EncodeOptions(crf=c) for c in (24, 32, 40, 48, 56, 63)]


def _encoded_size(frames, alphas, path: Path, options: EncodeOptions, **kw) -> int:
    encode(frames, alphas, path, options=options, **kw)
    return path.stat().st_size


def fit_and_save(rgb: list[np.ndarray], alphas: list[np.ndarray] | None, path: Path, *, fps: float, preset,
                 loop: int = 0, background=(255, 255, 255)) -> Path:
    """Fit frames to ``preset`` and write ``path``, trying smaller encodings until the byte cap holds.

    The pixel size stays the preset's; what gives way, in order: the encoding (fewer colours, lower
    quality, a higher CRF), then the frame count (every 2nd, 3rd... frame, down to ``min_frames``).
    Video formats size the CRF ladder with quick draft encodes and write only the chosen one for real.
    """
    p = get_preset(preset)
    path = Path(path)
    if path.suffix.lower() not in p.formats:
        raise ExportError(f"preset {p.name!r} takes {', '.join(p.formats)} files, not {path.suffix!r}; "
                          f"use -o NAME{p.default_suffix}")
    fmt = FORMATS[path.suffix.lower()]
    path.parent.mkdir(parents=True, exist_ok=True)
    ladder = _ladder(fmt)
    counts, last = set(), None
    for step in FRAME_STEPS:
        frames, a, f_fps, loops = fit_frames(rgb, alphas, fps=fps, preset=p, frame_step=step, background=background)
        if len(frames) in counts:  # clamped at min_frames: the same frames again
            continue
        counts.add(len(frames))
        kw = {"fmt": fmt, "fps": f_fps, "loop": loops if p.max_loops else loop, "background": background}
        start = 0
        if fmt in ("mp4", "webm"):
            start = next((k for k, o in enumerate(ladder) if _encoded_size(frames, a, path, replace(o, draft=True), **kw)
                          <= p.max_bytes), len(ladder))
        for opts in ladder[start:]:
            last = _encoded_size(frames, a, path, opts, **kw)
            if last <= p.max_bytes:
                log.info("%s: %d frames %dx%d at %.2f fps, %s → %d bytes", p.name, len(frames), frames[0].shape[1],
                         frames[0].shape[0], f_fps, opts, last)
                return path
    path.unlink(missing_ok=True)
    best = f"best {last} bytes" if last is not None else "even the draft encodes were over"
    raise ExportError(f"could not fit the animation under {p.name}'s {p.max_bytes // 1000} KB cap ({best}); "
                      "use fewer frames or a simpler still")
