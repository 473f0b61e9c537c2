"""Shared fixtures: the real data in ../shared (or $FACEGEN_SHARED), and small CelebA-layout folders built from it."""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import pytest

from bench import SHARED  # the real data: ../shared, or $FACEGEN_SHARED

# Prefect keeps its local database under PREFECT_HOME: give the test session its own, before any import.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="facegen-prefect-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

REPO = Path(__file__).resolve().parents[1]


def _shared(name: str) -> Path:
    path = SHARED / name
    if not path.is_dir():
        pytest.fail(f"{path} is missing: the tests read the real data in ../shared, or in the folder that "
                    "FACEGEN_SHARED names (see ../shared/README.md)")
    return path


@pytest.fixture(scope="session")
def shared_celeba() -> Path:
    return _shared("celeba")


@pytest.fixture(scope="session")
def shared_faces64() -> Path:
    return _shared("faces64")


@pytest.fixture(scope="session")
def celeba_annotations(shared_celeba: Path):
    """The real annotation files, joined (read once per session); column `present`: the mirror has the image."""
    from facegen.data.annotations import IMAGES_DIR, IMAGES_ZIP
    from facegen.data.celeba import read_celeba_annotations

    annotations = read_celeba_annotations(shared_celeba)
    with zipfile.ZipFile(shared_celeba / IMAGES_ZIP) as zf:
        names = {Path(n).name for n in zf.namelist() if n.startswith(IMAGES_DIR + "/")}
    annotations["present"] = annotations["image_id"].isin(names)
    return annotations


def make_celeba_subset(shared_celeba: Path, annotations, root: Path, n: int = 40, extra_rows: int = 0) -> Path:
    """A CelebA-layout folder with the first `n` real images and their annotation rows (+ `extra_rows`
    annotation rows whose images are absent), written with the project's own official-format writers."""
    from facegen.data.annotations import (ATTR_FILE, IDENTITY_FILE, IMAGES_DIR, IMAGES_ZIP, PARTITION_FILE,
                                          write_attributes, write_identities, write_partition)

    import pandas as pd

    rows = pd.concat([annotations[annotations["present"]].head(n), annotations[~annotations["present"]].tail(extra_rows)])
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


@pytest.fixture
def celeba_subset(shared_celeba: Path, celeba_annotations, tmp_path: Path) -> Path:
    return make_celeba_subset(shared_celeba, celeba_annotations, tmp_path / "celeba")

# Prefect stops its temporary server at interpreter exit and logs that to a console pytest has already
# closed; without this the harmless message comes out as a "--- Logging error ---" traceback.
import logging  # noqa: E402

logging.raiseExceptions = False
