"""Reading photos: any common still format into an EXIF-upright ``uint8 [H,W,3]`` RGB array."""
from __future__ import annotations

import io
import logging
import os
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np

from landmarks.errors import ImageError

log = logging.getLogger(__name__)

#: Default pixel limit (width * height). Larger images are refused before they are decoded,
#: which also stops decompression bombs. Override per call (``max_pixels=``) or with the
#: ``EMOGET_MAX_PIXELS`` environment variable.
DEFAULT_MAX_PIXELS = 50_000_000

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO | np.ndarray

# Leading bytes of video containers, so a clip handed in as a photo gets a useful message.
_VIDEO_MAGIC = (
    (4, b"ftyp"),  # MP4, MOV, M4V, 3GP (ISO base media); HEIF/AVIF also use it, see _ISO_STILL
    (0, b"\x1a\x45\xdf\xa3"),  # Matroska / WebM
    (0, b"FLV"),
    (0, b"OggS"),
    (0, b"\x00\x00\x01\xba"),  # MPEG program stream
    (0, b"\x00\x00\x01\xb3"),  # MPEG video
    (0, b"\x30\x26\xb2\x75"),  # ASF / WMV
)
_ISO_STILL = (b"heic", b"heix", b"mif1", b"msf1", b"avif", b"heim", b"heis")
_VIDEO_SUFFIXES = {".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".wmv", ".flv", ".mpg", ".mpeg", ".3gp", ".ts"}


def _default_max_pixels() -> int:
    env = os.environ.get("EMOGET_MAX_PIXELS")
    if env:
        try:
            return int(float(env))
        except ValueError:
            log.warning("ignoring EMOGET_MAX_PIXELS=%r: not a number", env)
    return DEFAULT_MAX_PIXELS


def _looks_like_video(head: bytes) -> bool:
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return True
    if len(head) >= 12 and head[4:8] == b"ftyp" and head[8:12] in _ISO_STILL:
        return False
    if len(head) >= 188 * 2 and head[0] == 0x47 and head[188] == 0x47:  # MPEG transport stream
        return True
    return any(head[off : off + len(magic)] == magic for off, magic in _VIDEO_MAGIC)


def _read_source(src: ImageSource, name: str | None) -> tuple[bytes, str]:
    if isinstance(src, (bytes, bytearray, memoryview)):
        return bytes(src), name or "<bytes>"
    if isinstance(src, (str, os.PathLike)):
        path = Path(src)
        label = name or str(path)
        if not path.exists():
            raise ImageError(f"{label!r} does not exist; check the path")
        if path.is_dir():
            raise ImageError(f"{label!r} is a folder, not an image; pass one photo file")
        try:
            return path.read_bytes(), label
        except OSError as exc:
            raise ImageError(f"cannot read {label!r}: {exc.strerror or exc}; check the file's permissions") from exc
    if hasattr(src, "read"):
        label = name or getattr(src, "name", None) or "<stream>"
        data = src.read()
        if isinstance(data, str):
            raise ImageError(f"{label!r} was opened in text mode; open it with 'rb'")
        return bytes(data), str(label)
    raise ImageError(f"cannot read an image from a {type(src).__name__}; pass a path, bytes or a binary file")


def _to_rgb_array(im, background: tuple[int, int, int]) -> np.ndarray:
    """Any PIL mode → ``uint8 [H,W,3]``; alpha is composited over ``background``."""
    from PIL import Image

    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(im).astype(np.float64)
        if mode == "F":
            top = 1.0 if arr.size and np.nanmax(arr) <= 1.0 else 255.0
        elif mode.startswith("I;16") or (arr.size and arr.max() > 255):
            top = 65535.0
        else:
            top = 255.0
        arr = np.clip(np.nan_to_num(arr) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(arr[..., None], 3, axis=2))
    if mode == "P" or mode == "PA":
        im = im.convert("RGBA" if (mode == "PA" or "transparency" in im.info) else "RGB")
    elif mode in ("LA", "La", "RGBa") or mode == "L" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode == "RGBA":
        base = Image.new("RGBA", im.size, (*background, 255))
        im = Image.alpha_composite(base, im)
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.ascontiguousarray(np.asarray(im, dtype=np.uint8))


def load_image(
    src: ImageSource,
    *,
    max_pixels: int | None = None,
    background: tuple[int, int, int] = (255, 255, 255),
    name: str | None = None,
) -> np.ndarray:
    """Read a photo into an upright RGB array.

    Args:
        src: a path, the file's bytes (e.g. an upload), a binary file object, or an
            existing ``uint8 [H,W,3]``/``[H,W]``/``[H,W,4]`` array (returned as RGB).
        max_pixels: refuse images with more than this many pixels (width * height),
            checked from the header before decoding. Default ``DEFAULT_MAX_PIXELS``
            or the ``EMOGET_MAX_PIXELS`` environment variable.
        background: RGB colour transparent pixels are composited over.
        name: how to name the source in error messages (defaults to the path).

    Returns:
        ``uint8 [H,W,3]`` RGB, C-contiguous, with the EXIF orientation applied.
        JPEG, PNG (alpha, 16-bit, palette), WebP, BMP, TIFF (first page), GIF (first
        frame) and anything else Pillow reads; grayscale, palette and CMYK convert to RGB.

    Raises:
        ImageError: naming the file, when it is missing, empty, not an image, a video,
            truncated or corrupt, or over the pixel limit.
    """
    limit = _default_max_pixels() if max_pixels is None else int(max_pixels)
    if isinstance(src, np.ndarray):
        return _array_to_rgb(src, name or "<array>", limit)

    from PIL import Image, ImageOps, UnidentifiedImageError

    data, label = _read_source(src, name)
    if not data:
        raise ImageError(f"{label!r} is empty (0 bytes); pick the photo file again")
    suffix = Path(label).suffix.lower()
    if _looks_like_video(data[:512]) or (suffix in _VIDEO_SUFFIXES and not _is_known_image(data)):
        raise ImageError(f"{label!r} is a video, not a photo; pass a still image (export a frame as PNG or JPEG)")

    # The pixel limit is checked from the header, before decoding. Pillow's process-wide guard
    # (DecompressionBombError above ~179 MP) is left as it is: changing it is not thread-safe.
    try:
        im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise _too_big(label, None, limit) from exc
    except UnidentifiedImageError as exc:
        raise ImageError(f"{label!r} is not an image Pillow can read (or it is corrupt); "
                         "use a JPEG, PNG, WebP, BMP, TIFF or GIF photo") from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error) as exc:
        raise ImageError(f"{label!r} is corrupt ({exc}); re-export or re-download the photo") from exc
    w, h = im.size
    if w <= 0 or h <= 0:
        raise ImageError(f"{label!r} has zero size ({w}x{h}); pick another photo")
    if w * h > limit:
        raise _too_big(label, (w, h), limit)
    try:
        im.seek(0)  # first page of a TIFF, first frame of a GIF/WebP animation
        im.load()
        im = ImageOps.exif_transpose(im)
    except Image.DecompressionBombError as exc:
        raise _too_big(label, (w, h), limit) from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error) as exc:
        raise ImageError(f"{label!r} is truncated or corrupt ({exc}); re-export or re-download the photo") from exc
    arr = _to_rgb_array(im, background)
    log.debug("loaded %s: %dx%d (%s)", label, arr.shape[1], arr.shape[0], im.mode)
    return arr


def _is_known_image(data: bytes) -> bool:
    head = data[:16]
    return head.startswith((b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM", b"II*\x00", b"MM\x00*")) or (
        head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def _too_big(label: str, size: tuple[int, int] | None, limit: int) -> ImageError:
    dims = f"{size[0]}x{size[1]} = {size[0] * size[1] / 1e6:.1f} MP" if size else "too many pixels"
    return ImageError(f"{label!r} is too large ({dims}, limit {limit / 1e6:.1f} MP); "
                      "downscale the photo or raise max_pixels / EMOGET_MAX_PIXELS")


def _array_to_rgb(arr: np.ndarray, label: str, limit: int) -> np.ndarray:
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageError(f"{label} has shape {arr.shape}; expected [H,W], [H,W,3] or [H,W,4]")
    if arr.shape[0] * arr.shape[1] > limit:
        raise _too_big(label, (arr.shape[1], arr.shape[0]), limit)
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and arr.size and np.nanmax(arr) <= 1.0:
            arr = arr * 255.0
        arr = np.clip(np.nan_to_num(arr.astype(np.float64)) + 0.5, 0, 255).astype(np.uint8)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] == 4:
        arr = arr[..., :3]
    return np.ascontiguousarray(arr)


def save_image(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Write ``uint8 [H,W,3]`` RGB (or ``[H,W,4]`` RGBA) to ``path``; the suffix picks the format.

    Creates missing parent folders. Raises :class:`ImageError` for an unknown suffix or an unwritable place.
    """
    from PIL import Image

    path = Path(path)
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"image must be uint8 [H,W,3] or [H,W,4], got {arr.dtype} {arr.shape}")
    im = Image.fromarray(arr)
    if arr.shape[2] == 4 and path.suffix.lower() in (".jpg", ".jpeg", ".bmp"):
        im = im.convert("RGB")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        im.save(path)
    except (KeyError, ValueError) as exc:
        raise ImageError(f"cannot write {str(path)!r}: unknown image type {path.suffix!r}; use .png or .jpg") from exc
    except OSError as exc:
        raise ImageError(f"cannot write {str(path)!r}: {exc.strerror or exc}; pick a writable place") from exc
    return path
