"""The ownphotos folder: people drawn from CelebA outside an excluded folder, written with their original bytes, and
the people list that training stages read to leave them out."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pandas as pd
import pytest

from facegen.data.celeba import CelebA
from facegen.data.folder import FaceFolder
from facegen.data.photo_folder import choose_people, read_people, write_people, write_photo_folder
from facegen.io import UnsafeOutputError
from tests.support.faces import make_celeba_people


@pytest.fixture
def celeba_people(shared_celeba: Path, celeba_annotations, tmp_path: Path) -> Path:
    return make_celeba_people(shared_celeba, celeba_annotations, tmp_path / "celeba", people=6)


def test_people_are_drawn_with_enough_photos_outside_the_excluded_ones(celeba_people: Path) -> None:
    faces = CelebA(celeba_people)
    everyone = sorted(faces.annotations["identity"].astype(str).unique())
    chosen = choose_people(faces, people=3, min_photos=5, exclude={everyone[0]}, seed=0)
    assert list(chosen.columns) == ["identity", "photos"] and len(chosen) == 3
    assert everyone[0] not in set(chosen["identity"]) and (chosen["photos"] >= 5).all()
    assert chosen.equals(choose_people(faces, people=3, min_photos=5, exclude={everyone[0]}, seed=0))
    with pytest.raises(ValueError, match="only 5 people have 5 or more photos"):
        choose_people(faces, people=6, min_photos=5, exclude={everyone[0]})


def test_the_folder_holds_the_original_photos_and_reads_as_a_user_folder(celeba_people: Path, tmp_path: Path) -> None:
    faces = CelebA(celeba_people)
    chosen = choose_people(faces, people=2, min_photos=5)
    written = write_photo_folder(faces, chosen, tmp_path / "photos")
    assert written == int(chosen["photos"].sum())
    folder = FaceFolder(tmp_path / "photos")
    assert sorted(folder.annotations["identity"].unique()) == sorted(chosen["identity"])
    image_id = folder.annotations["image_id"].iloc[0]
    with zipfile.ZipFile(celeba_people / "img_align_celeba.zip") as zf:
        original = zf.read(f"img_align_celeba/{image_id.split('/')[1]}")
    assert (tmp_path / "photos" / image_id).read_bytes() == original
    write_people(chosen, tmp_path / "people.csv")
    assert read_people(tmp_path / "people.csv") == set(chosen["identity"])
    # written again over its own folder; never over a folder of someone else's
    assert write_photo_folder(faces, chosen, tmp_path / "photos") == written
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "holiday.jpg").write_bytes(b"not ours")
    with pytest.raises(UnsafeOutputError):
        write_photo_folder(faces, chosen, tmp_path / "mine")
    assert (tmp_path / "mine" / "holiday.jpg").read_bytes() == b"not ours"


def test_a_people_list_without_identities_is_refused_naming_the_file(tmp_path: Path) -> None:
    pd.DataFrame({"name": ["x"]}).to_csv(tmp_path / "people.csv", index=False)
    with pytest.raises(ValueError, match=r"people.csv: no 'identity' column"):
        read_people(tmp_path / "people.csv")
