"""Shared fixtures: the real data in ../shared (or $FACEGEN_SHARED), and small CelebA-layout folders built from it."""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import pytest

from facegen.cpu_kernels import pin_avx2_kernels
from tests.support.faces import make_celeba_subset
from tests.support.shared import SHARED  # the real data: ../shared, or $FACEGEN_SHARED

# Prefect keeps its local database under PREFECT_HOME: give the test session its own, before any import. The
# flows that tests run in-process get the stages' settings (pipelines.stage_settings) this way, as Prefect reads
# its environment once, on import.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="facegen-prefect-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
# The test process computes with the CPU kernels a stage computes with, from its first tensor operation on: the
# loader workers and Dask workers it starts then compute alike too, whichever test pinned them first.
pin_avx2_kernels()


def _shared(name: str) -> Path:
    path = SHARED / name
    if not path.is_dir():
        pytest.skip(
            f"{path} is missing: these tests read the real data in ../shared, or in the folder that "
            "FACEGEN_SHARED names (see ../shared/README.md)"
        )
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


@pytest.fixture
def celeba_subset(shared_celeba: Path, celeba_annotations, tmp_path: Path) -> Path:
    return make_celeba_subset(shared_celeba, celeba_annotations, tmp_path / "celeba")


# Prefect stops its temporary server at interpreter exit and logs that to a console pytest has already
# closed; without this the harmless message comes out as a "--- Logging error ---" traceback.
import logging  # noqa: E402

logging.raiseExceptions = False
