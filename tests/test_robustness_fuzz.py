"""Fuzz test of the label readers (issue 22): seeded random mutations of valid CelebA annotation files and of an
attributes CSV. Every mutated file must either read into a well-formed table or fail with an AnnotationError
that names the file; anything else (a KeyError, an IndexError, a silently wrong table) fails the test."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from facegen.data.annotations import AnnotationError, read_attributes, read_identities, read_partition
from facegen.data.attribute_csv import read_attribute_csv

MUTATIONS_PER_FILE = 250
# Characters a careless edit, a spreadsheet or a broken download puts into a text file.
NOISE = list("0123456789 -+,.;\t\n\r\"'/\\abcxyzé\x00\ufeff") + ["-1", "1", "\r\n", "jpg", ".jpg", "2"]

VALID = {
    "list_attr_celeba.txt": (
        "3\r\nSmiling Male Young \r\n000001.jpg  1 -1  1\r\n000002.jpg -1 -1  1\r\n000003.jpg  1  1 -1\r\n"
    ),
    "identity_CelebA.txt": "000001.jpg 2880\r\n000002.jpg 2937\r\n000003.jpg 8692\r\n",
    "list_eval_partition.txt": "000001.jpg 0\r\n000002.jpg 1\r\n000003.jpg 2\r\n",
    "attributes.csv": "image,Smiling,Male,split\np1/1.jpg,1,0,train\np1/2.jpg,-1,1,valid\np2/3.jpg,0,1,test\n",
}


def _check_attributes(table: pd.DataFrame) -> None:
    assert table.index.is_unique and table.isin([0, 1]).all().all()


def _check_pairs(series: pd.Series) -> None:
    assert series.index.is_unique and series.notna().all()


def _check_csv(table: pd.DataFrame) -> None:
    assert table["image"].is_unique and (table["image"] != "").all()
    assert set(table.get("split", pd.Series(["train"]))) <= {"train", "valid", "test"}
    attributes = table.drop(columns=[c for c in ("image", "split") if c in table])
    assert attributes.isin([0, 1]).all().all()


READERS: dict[str, tuple[Callable, Callable]] = {
    "list_attr_celeba.txt": (read_attributes, _check_attributes),
    "identity_CelebA.txt": (read_identities, _check_pairs),
    "list_eval_partition.txt": (read_partition, _check_pairs),
    "attributes.csv": (read_attribute_csv, _check_csv),
}


def mutate(text: str, rng: random.Random) -> str:
    """One to three random edits: insert, delete or replace characters, or drop, repeat, swap or cut lines."""
    for _ in range(rng.randint(1, 3)):
        lines = text.splitlines(keepends=True)
        at = rng.randrange(len(text) + 1)
        edit = rng.randrange(7)
        if edit == 0:
            text = text[:at] + rng.choice(NOISE) + text[at:]
        elif edit == 1:
            text = text[:at] + text[at + rng.randint(1, 4) :]
        elif edit == 2:
            text = text[:at] + rng.choice(NOISE) + text[at + 1 :]
        elif edit == 3 and lines:
            del lines[rng.randrange(len(lines))]
            text = "".join(lines)
        elif edit == 4 and lines:
            k = rng.randrange(len(lines))
            text = "".join(lines[: k + 1] + [lines[k]] + lines[k + 1 :])
        elif edit == 5 and len(lines) > 1:
            i, j = rng.sample(range(len(lines)), 2)
            lines[i], lines[j] = lines[j], lines[i]
            text = "".join(lines)
        else:
            text = text[:at]
    return text


@pytest.mark.parametrize("name", sorted(VALID))
def test_mutated_label_files_read_well_or_fail_naming_the_file(tmp_path: Path, name: str) -> None:
    reader, check = READERS[name]
    rng = random.Random(f"issue-22:{name}")
    path = tmp_path / name
    outcomes = {"read": 0, "refused": 0}
    for _ in range(MUTATIONS_PER_FILE):
        text = mutate(VALID[name], rng)
        path.write_bytes(text.encode("utf-8"))
        try:
            result = reader(path)
        except AnnotationError as err:
            assert str(path) in str(err), (text, err)
            outcomes["refused"] += 1
            continue
        except Exception as err:  # broad on purpose: the point of the test
            pytest.fail(f"{name}: {type(err).__name__}: {err} on input {text!r}")
        check(result)
        outcomes["read"] += 1
    print(
        f"fuzz {name}: {MUTATIONS_PER_FILE} mutated files tried, {outcomes['read']} read, "
        f"{outcomes['refused']} refused with an error naming the file"
    )
    assert outcomes["read"] + outcomes["refused"] == MUTATIONS_PER_FILE and outcomes["refused"] > 0
