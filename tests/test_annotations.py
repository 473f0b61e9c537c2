"""The official annotation files: real files read correctly, malformed ones fail naming file and line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from facegen.data.annotations import (
    CELEBA_ATTRIBUTES,
    AnnotationError,
    read_attributes,
    read_identities,
    read_partition,
    select_attributes,
    set_attribute,
    write_attributes,
)

ROW = "000001.jpg " + " ".join(["-1"] * 39) + "  1"


def test_real_attribute_file(shared_celeba: Path) -> None:
    attributes = read_attributes(shared_celeba / "list_attr_celeba.txt")
    assert attributes.shape == (202_599, 40)
    assert tuple(attributes.columns) == CELEBA_ATTRIBUTES
    assert attributes.index[0] == "000001.jpg" and attributes.index[-1] == "202599.jpg"
    assert set(pd.unique(attributes.to_numpy().ravel())) == {0, 1}
    assert 0.05 < attributes["Eyeglasses"].mean() < 0.08  # CelebA's well-known imbalance
    assert attributes.loc["000001.jpg", "Smiling"] == 1 and attributes.loc["000001.jpg", "Male"] == 0


def test_real_identity_and_partition_files(shared_celeba: Path) -> None:
    identities = read_identities(shared_celeba / "identity_CelebA.txt")
    splits = read_partition(shared_celeba / "list_eval_partition.txt")
    assert len(identities) == len(splits) == 202_599
    assert identities["000001.jpg"] == "2880"
    assert splits.value_counts().to_dict() == {"train": 162_770, "test": 19_962, "valid": 19_867}


def _attr_file(tmp_path: Path, *rows: str, count: int | None = None) -> Path:
    path = tmp_path / "list_attr_celeba.txt"
    path.write_text(
        f"{len(rows) if count is None else count}\n{' '.join(CELEBA_ATTRIBUTES)} \n" + "\n".join(rows) + "\n"
    )
    return path


@pytest.mark.parametrize(
    "rows, count, message",
    [
        (
            (ROW, ROW.replace("000001", "000002").rsplit(" ", 1)[0]),
            None,
            r"list_attr_celeba.txt:4: expected an image name and 40 values, got 40",
        ),
        ((ROW.replace(" 1", " 2", 1),), None, r":3: attribute values must be 1 or -1, got '2'"),
        ((ROW,), 2, r"line 1 says 2 rows but the file has 1"),
        ((ROW, ROW), None, r"image '000001.jpg' is listed more than once"),
        (("x.txt" + ROW[10:],), None, r":3: expected an image file name first"),
    ],
)
def test_malformed_attribute_file_names_file_and_line(tmp_path: Path, rows, count, message) -> None:
    with pytest.raises(AnnotationError, match=message):
        read_attributes(_attr_file(tmp_path, *rows, count=count))


def test_malformed_identity_and_partition_lines(tmp_path: Path) -> None:
    identity = tmp_path / "identity_CelebA.txt"
    identity.write_text("000001.jpg 12\r\n000002.jpg twelve\r\n")
    with pytest.raises(AnnotationError, match=r"identity_CelebA.txt:2: identity must be a non-negative integer"):
        read_identities(identity)
    partition = tmp_path / "list_eval_partition.txt"
    partition.write_text("000001.jpg 0\r\n000002.jpg 7\r\n")
    with pytest.raises(AnnotationError, match=r"split codes must be 0, 1 or 2; image '000002.jpg' has '7'"):
        read_partition(partition)


def test_write_then_read_round_trip(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        [[0, 1], [1, 0]],
        index=pd.Index(["000001.jpg", "000002.jpg"], name="image_id"),
        columns=["Male", "Smiling"],
        dtype="int8",
    )
    write_attributes(tmp_path / "attrs.txt", frame)
    raw = (tmp_path / "attrs.txt").read_bytes()
    assert raw.startswith(b"2\r\nMale Smiling \r\n000001.jpg -1  1\r\n")
    pd.testing.assert_frame_equal(read_attributes(tmp_path / "attrs.txt"), frame)


def test_unknown_attribute_lists_valid_names() -> None:
    assert select_attributes(["Eyeglasses", "Male"]) == ["Eyeglasses", "Male"]
    with pytest.raises(
        ValueError, match=r"unknown attribute\(s\) \['Glasses'\]; valid names are: 5_o_Clock_Shadow.*Young"
    ):
        select_attributes(["Glasses"])


def test_set_attribute_turns_the_other_hair_colours_off() -> None:
    # The requests of evaluate_gan and the targets of `facegen edit` are built by it, on arrays and tensors.
    names = ["Black_Hair", "Male", "Blond_Hair"]
    rows = torch.tensor([[1.0, 1, 0], [0, 0, 1], [1, 0, 0]])
    set_attribute(rows, names, "Blond_Hair", 1)
    assert rows.tolist() == [[0, 1, 1], [0, 0, 1], [0, 0, 1]]
    set_attribute(rows, names, "Blond_Hair", torch.tensor([0.0, 1, 0]))  # off: the others stay as they are
    assert rows.tolist() == [[0, 1, 0], [0, 0, 1], [0, 0, 0]]
    array = np.array([[1.0, 1, 1], [0, 1, 0]])
    set_attribute(array, names, "Male", 0)  # not a hair colour: nothing else changes
    assert array.tolist() == [[1, 0, 1], [0, 0, 0]]
    with pytest.raises(ValueError, match="unknown attribute 'Bald'"):
        set_attribute(array, names, "Bald", 1)
