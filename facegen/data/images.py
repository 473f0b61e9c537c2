"""Decoding image files with errors that name the file."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class CorruptImageError(OSError):
    """An image file is truncated or not an image; the message names it."""


def decode_image(where: Path | str, data: bytes) -> Image.Image:
    """Decode image bytes fully (so a truncated file fails here, with its name) into RGB."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (OSError, SyntaxError, ValueError) as err:
        raise CorruptImageError(f"{where}: cannot decode image ({err})") from None
    return image.convert("RGB")
