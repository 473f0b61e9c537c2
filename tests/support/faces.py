"""Small face folders built from the real data in ../shared: a CelebA-layout subset, folder-per-person copies."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
from PIL import Image


def make_celeba_subset(shared_celeba: Path, annotations, root: Path, n: int = 40, extra_rows: int = 0) -> Path:
    """A CelebA-layout folder with the first `n` real images and their annotation rows (+ `extra_rows`
    annotation rows whose images are absent), written with the project's own official-format writers."""
    from facegen.data.annotations import (
        ATTR_FILE,
        IDENTITY_FILE,
        IMAGES_DIR,
        IMAGES_ZIP,
        PARTITION_FILE,
        write_attributes,
        write_identities,
        write_partition,
    )

    import pandas as pd

    rows = pd.concat(
        [annotations[annotations["present"]].head(n), annotations[~annotations["present"]].tail(extra_rows)]
    )
    rows = rows.drop(columns="present").set_index("image_id")
    root.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(shared_celeba / IMAGES_ZIP) as src, zipfile.ZipFile(root / IMAGES_ZIP, "w") as dst:
        for image_id in rows.index[:n]:
            dst.writestr(f"{IMAGES_DIR}/{image_id}", src.read(f"{IMAGES_DIR}/{image_id}"))
    write_attributes(root / ATTR_FILE, rows.drop(columns=["identity", "split"]))
    write_identities(root / IDENTITY_FILE, rows["identity"])
    write_partition(root / PARTITION_FILE, rows["split"])
    return root


def copy_people(shared_faces64: Path, root: Path, n_people: int = 3, per_person: int = 4, prefix: str = "") -> Path:
    """A folder-per-person data set at `root`: the first photos of the first people of faces64."""
    for person in sorted(shared_faces64.iterdir())[:n_people]:
        (root / f"{prefix}{person.name}").mkdir(parents=True)
        for photo in sorted(person.iterdir())[:per_person]:
            (root / f"{prefix}{person.name}" / photo.name).write_bytes(photo.read_bytes())
    return root


def people_arrays(shared_faces64: Path, n_people: int, per_person: int) -> tuple[np.ndarray, np.ndarray]:
    """The first photos of the first people of faces64 as one uint8 array (N, 64, 64, 3), and who is who."""
    people = sorted(shared_faces64.iterdir())[:n_people]
    photos = [photo for person in people for photo in sorted(person.iterdir())[:per_person]]
    images = np.stack([np.asarray(Image.open(photo).convert("RGB")) for photo in photos])
    return images, np.array([photo.parent.name for photo in photos])


def make_celeba_people(shared_celeba: Path, annotations, root: Path, people: int, min_photos: int = 5) -> Path:
    """A CelebA-layout folder with every photo of the first `people` identities that have at least `min_photos`
    images in the mirror (annotation files: those rows only)."""
    present = annotations[annotations["present"]]
    counts = present["identity"].value_counts()
    chosen = sorted(counts[counts >= min_photos].index, key=int)[:people]
    rows = present[present["identity"].isin(chosen)]
    return make_celeba_subset(shared_celeba, rows.assign(present=True), root, n=len(rows))
