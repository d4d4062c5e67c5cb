"""Images from outside are remade (node.images): small PNG squares with no metadata, and
hostile files (huge canvases, decompression bombs, not images, truncated) refused."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from node.images import AVATAR_SIZE, ICON_SIZE, ImageRefused, remake_square


def _image(fmt: str, size: tuple[int, int], **save: object) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, format=fmt, **save)
    return out.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def _png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG file whose header declares a ``width`` x ``height`` canvas, with a
    compressed stream of zeros that would inflate to all of it: a decompression bomb."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    zeros = zlib.compress(b"\x00" * (1 << 20), 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zeros)
        + _png_chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP"])
def test_images_are_remade_as_png_squares(fmt: str) -> None:
    made = remake_square(_image(fmt, (400, 300)), AVATAR_SIZE)
    with Image.open(io.BytesIO(made)) as image:
        assert image.format == "PNG" and image.size == (AVATAR_SIZE, AVATAR_SIZE)
        # The red survived: pixels were kept, not a blank square.
        red, green, _, alpha = image.convert("RGBA").getpixel((AVATAR_SIZE // 2,) * 2)
        assert red > 150 and green < 80 and alpha == 255


def test_exif_gps_and_camera_are_stripped_and_orientation_applied() -> None:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to view
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (52.0, 22.0, 7.5)
    gps[3] = "E"
    gps[4] = (4.0, 53.0, 30.0)
    # Left half red, right half blue, stored sideways as a camera does.
    picture = Image.new("RGB", (400, 200), (0, 0, 255))
    picture.paste((255, 0, 0), (0, 0, 200, 200))
    out = io.BytesIO()
    picture.save(out, format="JPEG", exif=exif.tobytes(), quality=95)
    original = out.getvalue()
    assert b"PhoneMaker" in original and b"Exif" in original

    made = remake_square(original, ICON_SIZE)
    assert b"PhoneMaker" not in made and b"Exif" not in made and b"eXIf" not in made
    with Image.open(io.BytesIO(made)) as image:
        assert not image.getexif() and "exif" not in image.info
        assert not any(key in image.info for key in ("icc_profile", "XML:com.adobe.xmp"))
        # Orientation 6 was applied: the red (left) half is now on top.
        top = image.convert("RGB").getpixel((ICON_SIZE // 2, ICON_SIZE // 8))
        bottom = image.convert("RGB").getpixel((ICON_SIZE // 2, ICON_SIZE * 7 // 8))
        assert top[0] > 200 and top[2] < 60, top
        assert bottom[2] > 200 and bottom[0] < 60, bottom


def test_png_text_chunks_do_not_survive() -> None:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "secret location 52.37N 4.89E")
    made = remake_square(_image("PNG", (64, 64), pnginfo=info), ICON_SIZE)
    assert b"secret location" not in made


def test_an_animation_keeps_its_first_frame_only() -> None:
    frames = [Image.new("RGB", (50, 50), color) for color in ((255, 0, 0), (0, 255, 0))]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], loop=0)
    made = remake_square(out.getvalue(), ICON_SIZE)
    with Image.open(io.BytesIO(made)) as image:
        assert getattr(image, "n_frames", 1) == 1
        assert image.convert("RGB").getpixel((5, 5))[0] > 200


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "not a PNG"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "not a"),
        (b"GIF89a" + b"\x00" * 20, "not a"),
        (_image("BMP", (10, 10)), "not a"),
        (_image("TIFF", (10, 10)), "not a"),
        (b"%PDF-1.4\n" + b"0" * 100, "not a"),
        (_image("PNG", (5000, 5000)), "too large"),
        (_png_declaring(100_000, 100_000), "too large"),
        (_png_declaring(0xFFFF, 0xFFFF), "too large"),
        (_image("PNG", (300, 300))[:400], "not a usable image"),
        (_image("JPEG", (300, 300))[:300], "not a usable image"),
    ],
    ids=[
        "empty",
        "svg",
        "broken-gif",
        "bmp",
        "tiff",
        "pdf",
        "huge-canvas",
        "bomb-100000",
        "bomb-65535",
        "truncated-png",
        "truncated-jpeg",
    ],
)
def test_hostile_images_are_refused(data: bytes, why: str) -> None:
    with pytest.raises(ImageRefused, match=why):
        remake_square(data, ICON_SIZE)


def test_a_bomb_is_refused_before_it_is_inflated() -> None:
    bomb = _png_declaring(40_000, 40_000)
    assert len(bomb) < 2_000  # 1.6 gigapixels in under 2 KB
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(ImageRefused, match="too large"):
            remake_square(bomb, ICON_SIZE)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5 * 1024 * 1024, peak


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_any_bytes_give_an_image_or_a_refusal(data: bytes) -> None:
    try:
        made = remake_square(data, ICON_SIZE)
    except ImageRefused:
        return
    assert made.startswith(b"\x89PNG")


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1, max_size=64), st.integers(min_value=0, max_value=2000))
def test_damaged_real_images_give_an_image_or_a_refusal(noise: bytes, at: int) -> None:
    original = _image("PNG", (40, 40))
    at = min(at, len(original) - 1)
    damaged = original[:at] + noise + original[at + len(noise) :]
    try:
        remake_square(damaged, ICON_SIZE)
    except ImageRefused:
        pass
