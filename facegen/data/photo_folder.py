"""A folder of a user's own photos made from CelebA people that no model of the project has seen.

The cross-dataset check (studies/ownphotos) needs photos laid out as a user has them (``<person>/<photo>.jpg``,
untouched JPEG files) of people in no training set: CelebA people of the ../shared subset mirror who are not
in faces64, with enough photos for enrolment and check-ins. They are chosen by a seeded draw, listed in a CSV
(``identity``, ``photos``) that training stages read to leave them out, and written with their original bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from facegen.data.celeba import CelebA
from facegen.io import Layout, atomic_dir, atomic_file, check_file_output

PEOPLE_COLUMNS = ("identity", "photos")
FOLDER_MARKER = ".facegen_photo_folder"  # written last: the folder is complete and the project made it
FOLDER_SIGNATURE = "photos written by facegen.data.photo_folder"
PEOPLE_HEADER = "identity,photos"  # write_people's CSV header
LAYOUT = Layout("photos of the photo_folder stage", FOLDER_MARKER, (FOLDER_MARKER, "[0-9]*", "[0-9]*/[0-9]*.jpg"))


def choose_people(
    faces: CelebA, *, people: int, min_photos: int, exclude: set[str] = frozenset(), seed: int = 0
) -> pd.DataFrame:
    """`people` identities with at least `min_photos` photos, none in `exclude`, drawn with `seed`
    (columns PEOPLE_COLUMNS, sorted by identity)."""
    counts = faces.annotations["identity"].astype(str).value_counts()
    eligible = np.sort(counts[(counts >= min_photos) & ~counts.index.isin(list(exclude))].index.to_numpy())
    if len(eligible) < people:
        raise ValueError(
            f"ownphotos.people={people}: only {len(eligible)} people have {min_photos} or more photos and are "
            f"not excluded ({len(exclude)} excluded)"
        )
    chosen = np.sort(np.random.default_rng(seed).choice(eligible, size=people, replace=False))
    return pd.DataFrame({"identity": chosen, "photos": counts[chosen].to_numpy()})


def write_photo_folder(faces: CelebA, chosen: pd.DataFrame, out: Path) -> int:
    """Write every photo of the chosen people to ``out/<identity>/<image_id>`` with its original bytes
    (atomically: the folder appears complete or not at all); returns the number of photos."""
    rows = faces.annotations[faces.annotations["identity"].astype(str).isin(chosen["identity"])]
    with atomic_dir(Path(out), LAYOUT) as tmp:
        for image_id, identity in tqdm(
            zip(rows["image_id"], rows["identity"].astype(str)), total=len(rows), desc="photo folder", unit="photo"
        ):
            (tmp / identity).mkdir(exist_ok=True)
            (tmp / identity / image_id).write_bytes(faces.read_bytes(image_id))
        (tmp / FOLDER_MARKER).write_text(FOLDER_SIGNATURE + "\n")
    return len(rows)


def write_people(chosen: pd.DataFrame, path: Path) -> None:
    """The chosen people as CSV; an existing file is replaced only if it is such a list."""
    check_file_output(Path(path), _is_people_csv, "a people list of the photo_folder stage")
    with atomic_file(Path(path), "w") as f:
        chosen.to_csv(f, index=False)


def read_people(path: Path) -> set[str]:
    """The identities listed in a people CSV (an ``identity`` column), as strings."""
    try:
        table = pd.read_csv(path, dtype={"identity": str})
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot read the people list ({err})") from None
    if "identity" not in table:
        raise ValueError(f"{path}: no 'identity' column (columns: {', '.join(map(str, table.columns))})")
    return set(table["identity"].astype(str))


def _is_people_csv(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.readline(100).rstrip(b"\r\n") == PEOPLE_HEADER.encode()
