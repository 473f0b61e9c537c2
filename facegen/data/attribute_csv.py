"""The attributes CSV of a folder-per-person source, read strictly: every error names the file, row and column.

Layout: a header, then one row per photo: ``image`` (``person/photo.jpg`` paths throughout, or bare file names
throughout), one column per attribute (0/1 or -1/1) and an optional ``split`` (train, valid, test). Rows are
numbered as lines of the file (the header is row 1).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd

from facegen.data.annotations import SPLIT_NAMES, AnnotationError
from facegen.io import InputTooLargeError, read_text_file

MAX_CSV_BYTES = 256_000_000  # about 2 million photos' rows: a larger attributes CSV is refused unread


def read_attribute_csv(path: Path) -> pd.DataFrame:
    """The validated table: ``image`` and ``split`` as strings, attribute columns as int8 0/1."""
    text = _text(path)
    _check_shape(path, text)
    try:
        table = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, ValueError) as err:
        raise AnnotationError(f"{path}: not a readable CSV ({err})") from None
    if "image" not in table:
        raise AnnotationError(
            f"{path}: row 1: needs an 'image' column (path relative to the folder root, or file "
            f"name); found {list(table.columns)}"
        )
    if table.empty:
        raise AnnotationError(f"{path}: no rows under the header")
    table["image"] = table["image"].str.strip()
    _check_images(path, table["image"])
    if "split" in table:
        _check_values(path, table, "split", table["split"].isin(SPLIT_NAMES), f"one of {', '.join(SPLIT_NAMES)}")
    for column in [c for c in table.columns if c not in ("image", "split")]:
        values = pd.to_numeric(table[column], errors="coerce")
        _check_values(path, table, column, values.isin([0, 1, -1]), "0/1 or -1/1")
        table[column] = (values > 0).astype("int8")
    return table


def _text(path: Path) -> str:
    try:
        text = read_text_file(path, MAX_CSV_BYTES, "utf-8-sig")  # a spreadsheet's byte-order mark is not data
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such attributes CSV (data.folder.attributes_csv)") from None
    except UnicodeDecodeError as err:
        raise AnnotationError(f"{path}: not UTF-8 text ({err})") from None
    except InputTooLargeError as err:
        raise AnnotationError(f"{err} (data.folder.attributes_csv)") from None
    if not text.strip():
        raise AnnotationError(f"{path}: empty file; expected a header with an 'image' column, then one row per photo")
    return text


def _check_shape(path: Path, text: str) -> None:
    """A header of distinct names, and as many fields in every row."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise AnnotationError(f"{path}: row 1: column {repeated[0]!r} appears more than once")
    for row in reader:
        if row and len(row) != len(header):
            raise AnnotationError(
                f"{path}: row {reader.line_num}: expected {len(header)} fields like the header, got {len(row)}"
            )


def _check_images(path: Path, images: pd.Series) -> None:
    """Every row names a photo, once, all as paths or all as bare names."""
    _check_values(path, images.to_frame(), "image", images != "", "a photo's path or file name")
    repeated = images[images.duplicated()]
    if len(repeated):
        row, first = repeated.index[0], images[images == repeated.iloc[0]].index[0]
        raise AnnotationError(
            f"{path}: row {row + 2} column 'image': {repeated.iloc[0]!r} is listed again "
            f"(first at row {first + 2}); each photo takes one row"
        )
    is_path = images.str.contains("/")
    if is_path.any() and not is_path.all():
        row = int((is_path != is_path.iloc[0]).idxmax())
        raise AnnotationError(
            f"{path}: row {row + 2} column 'image': {images[row]!r} is a "
            f"{'path' if is_path[row] else 'bare file name'} but row 2 has "
            f"{'a path' if is_path.iloc[0] else 'a bare file name'} ({images.iloc[0]!r}); "
            f"use person/photo paths or bare names throughout"
        )


def _check_values(path: Path, table: pd.DataFrame, column: str, ok: pd.Series, expected: str) -> None:
    if not ok.all():
        row = int((~ok).idxmax())
        raise AnnotationError(
            f"{path}: row {row + 2} column {column!r}: values must be {expected}, got {table.at[row, column]!r}"
        )
