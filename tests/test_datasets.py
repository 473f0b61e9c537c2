"""Dataset classes on real data: the CelebA subset mirror and the faces64 folder-per-person set."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch

from facegen.data.annotations import AnnotationError
from facegen.data.celeba import CelebA
from facegen.data.folder import FaceFolder
from tests.support.faces import copy_people, make_celeba_subset


def test_local_celeba_uses_the_images_present(shared_celeba: Path, caplog) -> None:
    faces = CelebA(shared_celeba, attributes=["Eyeglasses", "Male"])
    assert len(faces) == 19_383
    assert faces.missing_images == 202_599 - 19_383 and faces.unannotated_images == 0
    assert "183216 of 202599 annotation rows have no image" in caplog.text
    image, attributes, identity = faces[0]
    assert image.size == (178, 218) and image.mode == "RGB"
    assert attributes.tolist() == [0.0, 0.0]  # 000001.jpg: no eyeglasses, female
    assert faces.identity_names[identity] == "2880"
    assert faces.annotations["split"].unique().tolist() == ["train"]  # the mirror holds train images only
    assert len(CelebA(shared_celeba, split="test")) == 0


def test_local_celeba_strict_refuses_a_partial_copy(shared_celeba: Path) -> None:
    with pytest.raises(AnnotationError, match=r"183216 annotation rows have no image .*strict"):
        CelebA(shared_celeba, strict=True)


def test_filters_by_identity_size_and_attribute_order(shared_celeba, celeba_annotations, tmp_path: Path) -> None:
    root = make_celeba_subset(shared_celeba, celeba_annotations, tmp_path / "c", n=400)
    everything = CelebA(root)
    assert len(everything.attribute_names) == 40
    counts = everything.annotations["identity"].value_counts()
    kept = CelebA(root, min_images_per_identity=2, attributes=["Smiling", "Young"])
    assert 0 < len(kept) == int(counts[counts >= 2].sum()) < len(everything)
    row = kept.annotations.iloc[0]
    assert kept[0][1].tolist() == [float(row["Smiling"]), float(row["Young"])]


def test_extracted_folder_and_zip_read_the_same(celeba_subset: Path) -> None:
    from_zip = CelebA(celeba_subset)
    expected = list(from_zip[5][0].getdata())
    with zipfile.ZipFile(celeba_subset / "img_align_celeba.zip") as zf:
        zf.extractall(celeba_subset)
    (celeba_subset / "img_align_celeba.zip").unlink()
    from_folder = CelebA(celeba_subset)
    assert len(from_folder) == len(from_zip)
    assert list(from_folder[5][0].getdata()) == expected


def test_identity_file_that_disagrees_is_an_error(celeba_subset: Path) -> None:
    lines = (celeba_subset / "identity_CelebA.txt").read_text().splitlines()
    (celeba_subset / "identity_CelebA.txt").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(
        AnnotationError, match=r"identity_CelebA.txt and .*list_attr_celeba.txt list different images: 1 only in"
    ):
        CelebA(celeba_subset)


def test_html_saved_as_zip_is_a_clear_error(celeba_subset: Path) -> None:
    (celeba_subset / "img_align_celeba.zip").write_text("<!DOCTYPE html><title>Google Drive - Quota exceeded</title>")
    with pytest.raises(AnnotationError, match="not a valid zip archive"):
        CelebA(celeba_subset)


def test_annotation_rows_without_images_are_counted(shared_celeba, celeba_annotations, tmp_path: Path) -> None:
    root = make_celeba_subset(shared_celeba, celeba_annotations, tmp_path / "c", n=10, extra_rows=5)
    assert len(CelebA(root)) == 10 and CelebA(root).missing_images == 5


def test_faces64_folder_joined_with_celeba(shared_faces64: Path, shared_celeba: Path, celeba_annotations) -> None:
    faces = FaceFolder(shared_faces64, celeba_root=shared_celeba, attributes=["Eyeglasses", "Smiling"])
    assert len(faces) == 27_600 and len(faces.identity_names) == 1_289
    frame = faces.annotations
    assert frame.groupby("identity").size().between(15, 35).all()
    truth = celeba_annotations.set_index("image_id")
    for i in (0, 1234, 27_599):
        file = frame.at[i, "image_id"].split("/")[1]
        assert faces[i][1].tolist() == [float(truth.at[file, "Eyeglasses"]), float(truth.at[file, "Smiling"])]
        assert frame.at[i, "split"] == truth.at[file, "split"]
    assert faces[0][0].size == (64, 64)
    rich = FaceFolder(shared_faces64, celeba_root=shared_celeba, min_images_per_identity=30)
    assert 0 < len(rich.identity_names) < 1_289
    assert rich.annotations.groupby("identity").size().min() >= 30


def test_folder_with_attribute_csv(tmp_path: Path, shared_faces64: Path) -> None:
    root = copy_people(shared_faces64, tmp_path / "people", prefix="person_")
    photos = sorted(str(p.relative_to(root)) for p in root.rglob("*.jpg"))
    csv = tmp_path / "attributes.csv"
    csv.write_text(
        "image,Eyeglasses,Smiling\n" + "".join(f"{p},{i % 2},{-1 if i % 3 else 1}\n" for i, p in enumerate(photos[:-1]))
    )
    faces = FaceFolder(root, attributes_csv=csv)
    assert len(faces) == len(photos) - 1 and faces.unannotated_images == 1
    assert faces.annotations["Eyeglasses"].tolist() == [i % 2 for i in range(len(photos) - 1)]
    with pytest.raises(AnnotationError, match="have no row"):
        FaceFolder(root, attributes_csv=csv, strict=True)
    csv.write_text("image,Eyeglasses\n" + f"{photos[0]},1\n{photos[1]},yes\n")
    with pytest.raises(
        AnnotationError, match=r"attributes.csv: row 3 column 'Eyeglasses': values must be 0/1 or -1/1, got 'yes'"
    ):
        FaceFolder(root, attributes_csv=csv)


def test_folder_without_attributes_still_gives_identities(tmp_path: Path, shared_faces64: Path) -> None:
    faces = FaceFolder(copy_people(shared_faces64, tmp_path / "people", n_people=2, per_person=3))
    assert len(faces) == 6 and faces.attribute_names == []
    image, attributes, identity = faces[4]
    assert attributes.shape == torch.Size([0]) and identity == 1
    with pytest.raises(FileNotFoundError, match="no photos found"):
        FaceFolder(tmp_path / "people" / faces.identity_names[0])
