"""Images from outside (an avatar someone uploads, the icon of a remote actor or of a
visitor): decoded with Pillow under limits, and always **remade**, never passed on. What
browsers get from this node is a PNG we encoded from pixels: no EXIF (GPS, camera), no
ICC or XMP text, no animation, no trailing bytes, at most a small square.

Hostile input is refused with ``ImageRefused`` (a ValueError): not one of the formats we
take, a canvas over ``MAX_PIXELS`` (checked from the header before any pixel is
decoded: a small file may declare a huge canvas, a "decompression bomb"), a truncated
or corrupt file. docs/SECURITY.md, "Images".
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

FORMATS = ("PNG", "JPEG", "GIF", "WEBP")
"""What we decode (Pillow's names). Anything else is refused before decoding."""
ACCEPT = "image/png, image/jpeg, image/gif, image/webp"
"""``Accept`` for fetching remote images."""
MEDIA_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
"""Content-Types an upload may declare."""
MAX_PIXELS = 4096 * 4096
"""Larger canvases are refused unread (their header says how large they are)."""
MAX_UPLOAD_BYTES = 8 * 1024 * 1024
"""The largest avatar file accepted for upload."""
AVATAR_SIZE = 256
"""Our own accounts' avatars: a square of this side."""
ICON_SIZE = 128
"""Remote people's icons and visitors' avatars, kept by this node."""
OUTPUT_TYPE = "image/png"


class ImageRefused(ValueError):
    """Not an image we take; the message says why."""


def remake_square(data: bytes, size: int) -> bytes:
    """``data`` (PNG, JPEG, GIF or WebP) as a PNG square of ``size`` (centre-cropped, the
    EXIF orientation applied first, so a phone photo stands upright), metadata and all
    frames but the first dropped. ImageRefused otherwise."""
    try:
        with warnings.catch_warnings():
            # Pillow warns (DecompressionBombWarning) between MAX_IMAGE_PIXELS and twice
            # that; our own limit is lower and checked before decoding.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=list(FORMATS)) as image:
                width, height = image.size
                if not width or not height:
                    raise ImageRefused("an empty image")
                if width * height > MAX_PIXELS:
                    raise ImageRefused(
                        f"{width}x{height} pixels is too large (at most {MAX_PIXELS:,} pixels)"
                    )
                image.seek(0)
                # draft(): a large JPEG decodes at a reduced scale, cheaper and enough.
                image.draft("RGB", (size * 2, size * 2))
                upright = ImageOps.exif_transpose(image)
                frame = upright.convert("RGBA")
    except ImageRefused:
        raise
    except UnidentifiedImageError:
        raise ImageRefused("not a PNG, JPEG, GIF or WebP image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow's own check, from the header, before decoding: far over ours.
        raise ImageRefused(f"too large (at most {MAX_PIXELS:,} pixels)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageRefused(f"not a usable image: {exc}") from None
    square = ImageOps.fit(frame, (size, size), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    # A fresh image from pixels: save() writes no EXIF, ICC or text chunks unless asked.
    square.save(out, format="PNG", optimize=True)
    return out.getvalue()
