import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from landmarks import ImageError, load_image
from landmarks.io import save_image


def _rgb(h=24, w=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _bytes(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("fmt,lossless", [("PNG", True), ("BMP", True), ("TIFF", True), ("WEBP", False),
                                          ("JPEG", False), ("GIF", False)])
def test_formats_round_trip(tmp_path, fmt, lossless):
    # 8x8 blocks of 12 colours: exact in a GIF palette, and JPEG blocks stay flat
    arr = np.kron(_rgb(3, 4) // 32 * 32, np.ones((8, 8, 1), np.uint8))
    path = tmp_path / f"x.{fmt.lower()}"
    path.write_bytes(_bytes(Image.fromarray(arr), fmt, **{"WEBP": {"lossless": True}, "JPEG": {"quality": 95}}.get(fmt, {})))
    out = load_image(path)
    assert out.dtype == np.uint8 and out.shape == (24, 32, 3) and out.flags["C_CONTIGUOUS"]
    if lossless or fmt in ("WEBP", "GIF"):
        assert np.abs(out.astype(int) - arr).max() == 0
    else:
        assert np.abs(out.astype(int) - arr).mean() < 8


def test_sources_path_bytes_stream_array(tmp_path):
    arr = _rgb()
    data = _bytes(Image.fromarray(arr), "PNG")
    p = tmp_path / "a.png"
    p.write_bytes(data)
    for src in (p, str(p), data, bytearray(data), io.BytesIO(data)):
        np.testing.assert_array_equal(load_image(src), arr)
    with open(p, "rb") as fh:
        np.testing.assert_array_equal(load_image(fh), arr)
    np.testing.assert_array_equal(load_image(arr), arr)
    assert load_image(arr[..., 0]).shape == (24, 32, 3)


def test_alpha_composited_over_background():
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:4, :, 3] = 255  # top half opaque red, bottom half transparent
    out = load_image(_bytes(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert tuple(out[0, 0]) == (200, 0, 0)
    assert tuple(out[7, 7]) == (255, 255, 255)
    assert tuple(load_image(_bytes(Image.fromarray(rgba, "RGBA"), "PNG"), background=(0, 0, 0))[7, 7]) == (0, 0, 0)


def test_sixteen_bit_png_is_scaled_not_clipped():
    ramp = (np.linspace(0, 65535, 64).reshape(8, 8)).astype(np.uint16)
    out = load_image(_bytes(Image.fromarray(ramp), "PNG"))
    assert out.shape == (8, 8, 3)
    np.testing.assert_allclose(out[..., 0].astype(float), ramp / 257.0, atol=1)
    assert out.max() == 255 and out.min() == 0


def test_grayscale_palette_cmyk():
    g = load_image(_bytes(Image.fromarray(np.full((4, 4), 77, np.uint8), "L"), "PNG"))
    assert (g == 77).all()
    pal = Image.fromarray(_rgb()).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    assert load_image(_bytes(pal, "PNG")).shape == (24, 32, 3)
    cmyk = Image.new("CMYK", (6, 5), (0, 255, 255, 0))  # pure red in CMYK
    for fmt in ("JPEG", "TIFF"):
        out = load_image(_bytes(cmyk, fmt))
        assert out.shape == (5, 6, 3)
        assert out[..., 0].mean() > 200 and out[..., 1].mean() < 60


def test_exif_orientation_applied():
    arr = np.zeros((10, 20, 3), np.uint8)
    arr[:, :10] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    data = _bytes(Image.fromarray(arr), "JPEG", exif=exif, quality=95)
    out = load_image(data)
    assert out.shape == (20, 10, 3)  # width and height swapped
    assert out[:10].mean() > 200 and out[10:].mean() < 50  # the white half is now on top


def test_first_page_and_first_frame():
    frames = [Image.fromarray(np.full((6, 6, 3), v, np.uint8)) for v in (10, 250)]
    buf = io.BytesIO()
    frames[0].save(buf, format="TIFF", save_all=True, append_images=frames[1:])
    assert abs(int(load_image(buf.getvalue()).mean()) - 10) <= 1
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    assert load_image(buf.getvalue()).mean() < 40


def _png_with_size(w: int, h: int) -> bytes:
    """A valid 1x1 PNG whose header claims ``w x h`` (a decompression bomb's calling card)."""
    data = bytearray(_bytes(Image.new("L", (1, 1)), "PNG"))
    ihdr = bytearray(data[12:29])  # type + 13 bytes of IHDR data
    ihdr[4:12] = struct.pack(">II", w, h)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(data)


def test_bad_inputs_name_the_file(tmp_path):
    cases = {
        "notes.jpg": (b"hello, this is text " * 10, "not an image"),
        "empty.png": (b"", "empty"),
        "clip.jpg": (b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64, "video"),
        "clip.webm": (b"\x1a\x45\xdf\xa3" + b"\x00" * 64, "video"),
        "clip.avi": (b"RIFF\x00\x00\x00\x00AVI LIST" + b"\x00" * 64, "video"),
        "bomb.png": (_png_with_size(100_000, 100_000), "too large"),
        "huge.png": (_png_with_size(8000, 8000), r"too large \(8000x8000 = 64.0 MP, limit 50.0 MP\)"),
    }
    jpeg = _bytes(Image.fromarray(_rgb(64, 64)), "JPEG")
    png = _bytes(Image.fromarray(_rgb(64, 64)), "PNG")
    cases["cut.jpg"] = (jpeg[: len(jpeg) // 2], "truncated or corrupt")
    cases["cut.png"] = (png[: len(png) // 2], "truncated or corrupt")
    corrupt = bytearray(png)
    corrupt[60:120] = b"\x00" * 60
    cases["garbled.png"] = (bytes(corrupt), "corrupt")
    for name, (data, words) in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(ImageError, match=words) as info:
            load_image(p)
        assert name in str(info.value)
    with pytest.raises(ImageError, match="does not exist"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="folder"):
        load_image(tmp_path)
    with pytest.raises(ImageError, match="upload.png"):
        load_image(b"nope", name="upload.png")


def test_pixel_limit_is_configurable(tmp_path, monkeypatch):
    data = _bytes(Image.fromarray(_rgb(100, 100)), "PNG")
    assert load_image(data, max_pixels=10_000).shape == (100, 100, 3)
    with pytest.raises(ImageError, match="too large"):
        load_image(data, max_pixels=9_999)
    monkeypatch.setenv("EMOGET_MAX_PIXELS", "5000")
    with pytest.raises(ImageError, match="EMOGET_MAX_PIXELS"):
        load_image(data)


def test_save_image(tmp_path):
    arr = _rgb()
    p = save_image(arr, tmp_path / "sub" / "x.png")
    np.testing.assert_array_equal(load_image(p), arr)
    with pytest.raises(ImageError, match="unknown image type"):
        save_image(arr, tmp_path / "x.nope")
