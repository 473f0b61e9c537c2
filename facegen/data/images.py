"""Reading and decoding photo files with errors that name the file: unreadable (missing, a dangling link, not
allowed, not a regular file), too large (a file bigger than any photo of the pixel limit, a decompression bomb),
corrupt; 16-bit photos are scaled to 8 bits and the camera's EXIF orientation is applied.

Every photo a user hands the project is read through ``load_photo`` (or ``read_photo_bytes`` then
``decode_image``), so these checks hold for each reader (folder sources, the CelebA layout, attendance).
"""

from __future__ import annotations

import io
import os
import re
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from facegen.config import MAX_IMAGE_PIXELS

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")
# Decoded pixels above which a photo is refused unread (`data.max_image_pixels`, default MAX_IMAGE_PIXELS): 100 MP
# is more than almost every camera makes, and 600 MB of RGB per loader worker; a 15,000 x 15,000 JPEG is a
# decompression bomb.


# A photo file may hold at most this many bytes per pixel of data.max_image_pixels, plus metadata (EXIF, ICC
# profile, XMP, an embedded preview): 8 is 16-bit RGBA stored uncompressed, the most a photo format stores per
# pixel, so no photo within the pixel limit is refused for its size; a larger file is refused before it is read.
BYTES_PER_PIXEL = 8
METADATA_BYTES = 16 << 20


class CorruptImageError(OSError):
    """An image file is truncated, not an image, or too large to decode; the message names it."""

    kind = "corrupt"  # how prepare's skipped.csv labels the reason


class UnreadablePhotoError(CorruptImageError):
    """A photo file cannot be opened or read: gone, a dangling symbolic link, not allowed (permissions), or no
    regular file (a fifo, a socket, a device, a folder named like a photo); the message names it."""

    kind = "unreadable"


def max_photo_bytes(max_pixels: int = MAX_IMAGE_PIXELS) -> int:
    """The largest photo file read, in bytes: ``BYTES_PER_PIXEL`` per allowed pixel plus ``METADATA_BYTES``."""
    return max_pixels * BYTES_PER_PIXEL + METADATA_BYTES


def display_path(path: Path | str) -> str:
    """`path` as text that can always be written (CSV, JSON, SQLite, a terminal): bytes of its name that are no
    UTF-8 (which Python keeps as surrogate escapes) are shown as ``\\xNN`` (``os.fsencode`` + the codec's
    ``backslashreplace``)."""
    text = os.fspath(path)
    if isinstance(text, str) and text.isascii():  # the common case, without an encode and decode
        return text
    return os.fsencode(text).decode("utf-8", "backslashreplace")


_FILE_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a fifo"), (stat.S_ISSOCK, "a socket"))


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words (from its ``st_mode``)."""
    return next((name for test, name in _FILE_KINDS if test(mode)), "a device or special file")


def read_photo_bytes(path: Path | str, max_pixels: int = MAX_IMAGE_PIXELS) -> bytes:
    """The bytes of a photo file, refused before reading (``UnreadablePhotoError``, ``CorruptImageError``) when it
    is no regular file or holds more than ``max_photo_bytes(max_pixels)`` bytes. Opened without blocking, so a
    fifo named like a photo is refused rather than waited on; a file that grows while read is refused too."""
    where, limit = display_path(path), max_photo_bytes(max_pixels)
    too_large = f"{where}: too large: {{:,}} bytes, more than a photo of data.max_image_pixels ({max_pixels:,}) takes"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        reason = "a dangling symbolic link" if os.path.islink(path) else "no such file"
        raise UnreadablePhotoError(f"{where}: cannot be read ({reason})") from None
    except OSError as err:
        raise UnreadablePhotoError(f"{where}: cannot be read ({err.strerror or err})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnreadablePhotoError(f"{where}: not a regular file ({file_kind(info.st_mode)})")
        if info.st_size > limit:
            raise CorruptImageError(too_large.format(info.st_size))
        file = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with file:
        try:
            data = file.read(limit + 1)
        except OSError as err:
            raise UnreadablePhotoError(f"{where}: cannot be read ({err.strerror or err})") from None
    if len(data) > limit:
        raise CorruptImageError(too_large.format(len(data)) + " (it grew while read)")
    return data


def load_photo(path: Path | str, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """A photo file as upright 8-bit RGB: ``read_photo_bytes`` then ``decode_image``."""
    return decode_image(path, read_photo_bytes(path, max_pixels), max_pixels)


def decode_image(where: Path | str, data: bytes, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """Decode image bytes fully (so a truncated file fails here, with its name) into upright 8-bit RGB.

    Images of more than ``max_pixels`` pixels are refused from their header, before any decoding; an EXIF
    orientation (phones store portraits sideways) is applied (``PIL.ImageOps.exif_transpose``); 16-bit images
    are scaled to 8 bits (not clipped to white, as Pillow's own conversion does)."""
    where = display_path(where)
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
    except (OSError, SyntaxError, ValueError) as err:  # Pillow names the buffer it read from: not worth a reader's eye
        why = re.sub(r" <_io\.BytesIO object at 0x[0-9a-f]+>", "", str(err))
        raise CorruptImageError(f"{where}: cannot decode image ({why})") from None
    if pixels > max_pixels:
        raise CorruptImageError(
            f"{where}: too large: {pixels:,} pixels, more than data.max_image_pixels ({max_pixels:,})"
        )
    try:
        ImageOps.exif_transpose(image, in_place=True)
    except Exception as err:  # a damaged EXIF block: Pillow raises what its parser meets (struct, KeyError, ...)
        raise CorruptImageError(f"{where}: cannot apply its EXIF orientation ({type(err).__name__}: {err})") from None
    if image.mode.startswith("I"):  # I;16, I;16B, I (16-bit PNG/TIFF greyscale): 0..65535
        grey = np.asarray(image, dtype=np.float64) / 257.0
        image = Image.fromarray(np.clip(np.rint(grey), 0, 255).astype(np.uint8))
    return image.convert("RGB")


def walk_files(root: Path | str) -> tuple[list[tuple[tuple[str, ...], str]], list[tuple[str, str]]]:
    """Every regular file under `root`, sub-folders and links to folders included, as (path parts relative to
    root, path to open: a str, cheaper than a Path per file), and every entry that cannot be a photo file as
    (relative display path, reason): a dangling symbolic link, a folder or file that cannot be read, a fifo,
    socket or device, a link that loops back into a folder it is in. Both lists are sorted; hidden names
    (``.DS_Store``, ``.git``) are ignored.

    Parts keep a name's bytes that are no UTF-8 as Python's surrogate escapes (so the path opens); show them
    with ``display_path``. An unreadable `root` itself raises OSError."""
    root = os.fspath(root)
    files: list[tuple[tuple[str, ...], str]] = []
    problems: list[tuple[str, str]] = []
    top = os.stat(root)
    stack: list[tuple[str, tuple[str, ...], frozenset]] = [(root, (), frozenset({(top.st_dev, top.st_ino)}))]
    while stack:  # a stack, not recursion: a folder tree of any depth is walked
        folder, parts, above = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as err:
            if not parts:
                raise
            problems.append((display_path("/".join(parts)), f"folder cannot be read ({err.strerror or err})"))
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            here = (*parts, entry.name)
            try:  # is_file: from the folder listing, without a stat call, unless the entry is a link
                if entry.is_file():
                    files.append((here, entry.path))
                    continue
                info = entry.stat()  # follows a symbolic link to what it names
            except FileNotFoundError:
                reason = "a dangling symbolic link" if entry.is_symlink() else "vanished while listed"
                problems.append((display_path("/".join(here)), reason))
                continue
            except OSError as err:  # a link loop (ELOOP), a name that is not allowed
                problems.append((display_path("/".join(here)), f"cannot be read ({err.strerror or err})"))
                continue
            if stat.S_ISDIR(info.st_mode):
                key = (info.st_dev, info.st_ino)
                if key in above:
                    problems.append(
                        (display_path("/".join(here)), "a link to a folder that holds it (a loop); not followed")
                    )
                else:
                    stack.append((entry.path, here, above | {key}))
            elif stat.S_ISREG(info.st_mode):  # became a file since it was listed
                files.append((here, entry.path))
            else:
                problems.append((display_path("/".join(here)), f"not a regular file ({file_kind(info.st_mode)})"))
    return sorted(files), sorted(problems)
