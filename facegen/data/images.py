"""Decoding image files with errors that name the file: corrupt, too large (decompression bombs), 16-bit."""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from facegen.config import MAX_IMAGE_PIXELS

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")
# Decoded pixels above which a photo is refused unread (`data.max_image_pixels`, default MAX_IMAGE_PIXELS): 100 MP
# is more than almost every camera makes, and 600 MB of RGB per loader worker; a 15,000 x 15,000 JPEG is a
# decompression bomb.


class CorruptImageError(OSError):
    """An image file is truncated, not an image, or too large to decode; the message names it."""


def decode_image(where: Path | str, data: bytes, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """Decode image bytes fully (so a truncated file fails here, with its name) into 8-bit RGB.

    Images of more than ``max_pixels`` pixels are refused from their header, before any decoding; 16-bit
    images are scaled to 8 bits (not clipped to white, as Pillow's own conversion does)."""
    # Pillow's own bomb check (a warning above its limit, an error above twice that) must not refuse less
    Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
        pixels = image.width * image.height
        if pixels <= max_pixels:
            image.load()
    except Image.DecompressionBombError as err:  # "Image size (N pixels) exceeds limit ..."
        pixels = int(re.search(r"\((\d+) pixels\)", str(err)).group(1))
    except (OSError, SyntaxError, ValueError) as err:
        raise CorruptImageError(f"{where}: cannot decode image ({err})") from None
    if pixels > max_pixels:
        raise CorruptImageError(
            f"{where}: too large: {pixels:,} pixels, more than data.max_image_pixels ({max_pixels:,})"
        )
    if image.mode.startswith("I"):  # I;16, I;16B, I (16-bit PNG/TIFF greyscale): 0..65535
        grey = np.asarray(image, dtype=np.float64) / 257.0
        image = Image.fromarray(np.clip(np.rint(grey), 0, 255).astype(np.uint8))
    return image.convert("RGB")
