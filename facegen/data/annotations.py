"""The official CelebA annotation files: their names, checksums, and a strict reader/writer for each.

Readers name the file and line of anything malformed. Writers produce the official layout (CRLF line
endings, the attribute file's count and header lines), so generated data sets read like the real one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from facegen.io import InputTooLargeError, read_text_file

if TYPE_CHECKING:
    import torch

CELEBA_ATTRIBUTES: tuple[str, ...] = (
    "5_o_Clock_Shadow",
    "Arched_Eyebrows",
    "Attractive",
    "Bags_Under_Eyes",
    "Bald",
    "Bangs",
    "Big_Lips",
    "Big_Nose",
    "Black_Hair",
    "Blond_Hair",
    "Blurry",
    "Brown_Hair",
    "Bushy_Eyebrows",
    "Chubby",
    "Double_Chin",
    "Eyeglasses",
    "Goatee",
    "Gray_Hair",
    "Heavy_Makeup",
    "High_Cheekbones",
    "Male",
    "Mouth_Slightly_Open",
    "Mustache",
    "Narrow_Eyes",
    "No_Beard",
    "Oval_Face",
    "Pale_Skin",
    "Pointy_Nose",
    "Receding_Hairline",
    "Rosy_Cheeks",
    "Sideburns",
    "Smiling",
    "Straight_Hair",
    "Wavy_Hair",
    "Wearing_Earrings",
    "Wearing_Hat",
    "Wearing_Lipstick",
    "Wearing_Necklace",
    "Wearing_Necktie",
    "Young",
)
# CelebA's hair colours: a face has one at most (98.6% of CelebA's images; every demo face). Asking for one turns
# the others off, as StarGAN's target labels do, or a request for blond hair on a black-haired row asks for both.
HAIR_COLOURS: tuple[str, ...] = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")


def excluded_by(name: str, attributes: Sequence[str]) -> list[str]:
    """The attributes among ``attributes`` that turning ``name`` on turns off: the other hair colours."""
    return [a for a in attributes if name in HAIR_COLOURS and a in HAIR_COLOURS and a != name]


def set_attribute(rows: np.ndarray | torch.Tensor, attributes: Sequence[str], name: str, values: object) -> None:
    """Set column ``name`` of ``rows`` (N x A 0/1, columns named by ``attributes``) to ``values``, in place.

    Where it is now on, the attributes it excludes (:func:`excluded_by`) are turned off: a face can meet the row."""
    attributes = list(attributes)
    if name not in attributes:
        raise ValueError(f"unknown attribute {name!r}; the rows' columns are {attributes}")
    column = attributes.index(name)
    rows[:, column] = values
    on = rows[:, column] == 1
    for other in excluded_by(name, attributes):
        rows[on, attributes.index(other)] = 0


SPLIT_NAMES: tuple[str, ...] = ("train", "valid", "test")  # codes 0, 1, 2 of list_eval_partition.txt

IMAGES_ZIP = "img_align_celeba.zip"
IMAGES_DIR = "img_align_celeba"
ATTR_FILE = "list_attr_celeba.txt"
LANDMARKS_FILE = "list_landmarks_align_celeba.txt"  # optional: five points per aligned image
LANDMARK_COLUMNS = tuple(f"_landmark_{i}" for i in range(10))  # x, y of left eye, right eye, nose, mouth corners
IDENTITY_FILE = "identity_CelebA.txt"
PARTITION_FILE = "list_eval_partition.txt"
MAX_ANNOTATION_BYTES = 256_000_000  # the largest official file (list_attr_celeba.txt) is 26.7 MB


@dataclass(frozen=True)
class CelebAFile:
    """One file of the official distribution: Google Drive id, official md5, and whether it is needed."""

    name: str
    gdrive_id: str
    md5: str
    required: bool = True


# The same ids and checksums torchvision's datasets.CelebA uses.
CELEBA_FILES: tuple[CelebAFile, ...] = (
    CelebAFile(IMAGES_ZIP, "0B7EVK8r0v71pZjFTYXZWM3FlRnM", "00d2c5bc6d35e252742224ab0c1e8fcb"),
    CelebAFile(ATTR_FILE, "0B7EVK8r0v71pblRyaVFSWGxPY0U", "75e246fa4810816ffd6ee81facbd244c"),
    CelebAFile(IDENTITY_FILE, "1_ee_0u7vcNLOfNLegJRHmolfH5ICW-XS", "32bd1bd63d3c78cd57e08160ec5ed1e2"),
    CelebAFile(PARTITION_FILE, "0B7EVK8r0v71pY0NSMzRuSXJEVkk", "d32c9cbf5e040fd4025c592c306e6668"),
    CelebAFile(
        "list_bbox_celeba.txt", "0B7EVK8r0v71pbThiMVRxWXZ4dU0", "00566efa6fedff7a56946cd1c10f1c16", required=False
    ),
    CelebAFile(
        LANDMARKS_FILE,
        "0B7EVK8r0v71pd0FJY3Blby1HUTQ",
        "cc24ecafdb5b50baae59b03474781f8c",
        required=False,
    ),
)


class AnnotationError(ValueError):
    """An annotation file is malformed; the message names the file and line."""


def select_attributes(names: list[str] | tuple[str, ...], available: tuple[str, ...] = CELEBA_ATTRIBUTES) -> list[str]:
    """Validate attribute names; an unknown name is an error that lists the valid ones."""
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ValueError(f"unknown attribute(s) {unknown}; valid names are: {', '.join(available)}")
    if len(set(names)) != len(names):
        raise ValueError(f"attribute names repeat: {list(names)}")
    return list(names)


def _lines(path: Path) -> list[str]:
    try:
        return read_text_file(path, MAX_ANNOTATION_BYTES, "ascii").splitlines()
    except InputTooLargeError as err:
        raise AnnotationError(str(err)) from None
    except UnicodeDecodeError as err:
        raise AnnotationError(f"{path}: not an ASCII text annotation file ({err})") from None


def _check_image_id(path: Path, lineno: int, image_id: str) -> None:
    if not image_id.lower().endswith((".jpg", ".jpeg", ".png")):
        raise AnnotationError(f"{path}:{lineno}: expected an image file name first, got {image_id!r}")


def read_attributes(path: Path) -> pd.DataFrame:
    """list_attr_celeba.txt -> DataFrame indexed by image id, one int8 column (0/1) per attribute."""
    lines = _lines(path)
    if len(lines) < 2:
        raise AnnotationError(f"{path}: expected a count line and a header line, found {len(lines)} line(s)")
    try:
        expected = int(lines[0])
    except ValueError:
        raise AnnotationError(f"{path}:1: expected the number of rows, got {lines[0]!r}") from None
    header = lines[1].split()
    if not header:
        raise AnnotationError(f"{path}:2: empty attribute header")
    rows = [line for line in lines[2:] if line.strip()]
    if len(rows) != expected:
        raise AnnotationError(f"{path}: line 1 says {expected} rows but the file has {len(rows)}")
    frame = _parse_attribute_rows(rows, header)
    if frame is None:  # the fast parse found a problem: locate it exactly
        _raise_first_bad_row(path, rows, header)
    return _unique_index(frame, path)


def _parse_attribute_rows(rows: list[str], header: list[str]) -> pd.DataFrame | None:
    """Vectorised parse of well-formed rows; None if any row is malformed."""
    fields = np.array(" ".join(rows).split(), dtype=object)
    if fields.size != len(rows) * (len(header) + 1):
        return None
    table = fields.reshape(len(rows), len(header) + 1)
    values = table[:, 1:]
    ones, minus = values == "1", values == "-1"
    names = pd.Index(table[:, 0].astype(str), name="image_id")
    if not (ones | minus).all() or not names.str.lower().str.endswith((".jpg", ".jpeg", ".png")).all():
        return None
    return pd.DataFrame(ones.astype(np.int8), index=names, columns=header)


def _raise_first_bad_row(path: Path, rows: list[str], header: list[str]) -> None:
    for i, line in enumerate(rows):
        fields, lineno = line.split(), i + 3
        if len(fields) != len(header) + 1:
            raise AnnotationError(
                f"{path}:{lineno}: expected an image name and {len(header)} values, got {len(fields)} fields"
            )
        _check_image_id(path, lineno, fields[0])
        bad = [v for v in fields[1:] if v not in ("1", "-1")]
        if bad:
            raise AnnotationError(f"{path}:{lineno}: attribute values must be 1 or -1, got {bad[0]!r}")
    raise AssertionError("unreachable: a row was malformed")


def read_landmarks(path: Path) -> pd.DataFrame:
    """list_landmarks_align_celeba.txt -> DataFrame indexed by image id, the ten coordinates as float columns
    named LANDMARK_COLUMNS (private columns: prepare uses them, they are not attributes)."""
    lines = _lines(path)
    if len(lines) < 2:
        raise AnnotationError(f"{path}: expected a count line and a header line, found {len(lines)} line(s)")
    rows = [line.split() for line in lines[2:] if line.strip()]
    for lineno, fields in enumerate(rows, start=3):
        if len(fields) != 11:
            raise AnnotationError(
                f"{path}:{lineno}: expected an image name and 10 coordinates, got {len(fields)} fields"
            )
        _check_image_id(path, lineno, fields[0])
        try:
            [float(v) for v in fields[1:]]
        except ValueError:
            raise AnnotationError(f"{path}:{lineno}: coordinates must be numbers, got {fields[1:]}") from None
    frame = pd.DataFrame(
        [[float(v) for v in fields[1:]] for fields in rows],
        index=pd.Index([fields[0] for fields in rows], name="image_id"),
        columns=list(LANDMARK_COLUMNS),
    )
    return _unique_index(frame, path)


def _read_pairs(path: Path, what: str) -> pd.Series:
    ids: list[str] = []
    values: list[str] = []
    for lineno, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2:
            raise AnnotationError(f"{path}:{lineno}: expected '<image> <{what}>', got {line.strip()!r}")
        _check_image_id(path, lineno, fields[0])
        if not fields[1].isdigit():
            raise AnnotationError(f"{path}:{lineno}: {what} must be a non-negative integer, got {fields[1]!r}")
        ids.append(fields[0])
        values.append(fields[1])
    series = pd.Series(values, index=pd.Index(ids, name="image_id"), name=what)
    return _unique_index(series, path)


def _unique_index(obj, path: Path):
    duplicated = obj.index[obj.index.duplicated()]
    if len(duplicated):
        raise AnnotationError(f"{path}: image {duplicated[0]!r} is listed more than once")
    return obj


def read_identities(path: Path) -> pd.Series:
    """identity_CelebA.txt -> Series of identity labels (strings) indexed by image id."""
    return _read_pairs(path, "identity")


def read_partition(path: Path) -> pd.Series:
    """list_eval_partition.txt -> Series of split names ('train', 'valid', 'test') indexed by image id."""
    codes = _read_pairs(path, "split")
    bad = codes[~codes.isin(["0", "1", "2"])]
    if len(bad):
        raise AnnotationError(f"{path}: split codes must be 0, 1 or 2; image {bad.index[0]!r} has {bad.iloc[0]!r}")
    return codes.map(lambda c: SPLIT_NAMES[int(c)]).rename("split")


def write_attributes(path: Path, attributes: pd.DataFrame) -> None:
    """Write a 0/1 attribute frame (indexed by image id) in the official list_attr_celeba.txt layout."""
    lines = [str(len(attributes)), " ".join(attributes.columns) + " "]
    signs = np.where(attributes.to_numpy() > 0, " 1", "-1")
    lines += [f"{image_id} " + " ".join(row) for image_id, row in zip(attributes.index, signs)]
    _write_crlf(path, lines)


def write_identities(path: Path, identities: pd.Series) -> None:
    _write_crlf(path, [f"{i} {v}" for i, v in identities.items()])


def write_partition(path: Path, splits: pd.Series) -> None:
    _write_crlf(path, [f"{i} {SPLIT_NAMES.index(s)}" for i, s in splits.items()])


def _write_crlf(path: Path, lines: list[str]) -> None:
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("ascii"))
