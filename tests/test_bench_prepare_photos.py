"""The large-photo benchmark runs on a few real photos and reports both ways and how far the crops move."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from bench import prepare_photos


def test_the_benchmark_prints_both_ways(shared_celeba: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "argv", ["prepare_photos", "--photos", "2", "--scale", "4", "--max-detect-side", "400"])
    prepare_photos.main()
    out = capsys.readouterr().out
    result = json.loads(out[out.index("{") :])
    assert result["photos"] == 2 and result["photo_size"] == [178 * 4, 218 * 4]
    assert result["photos_per_second_full"] > 0 and result["photos_per_second_shrunk"] > 0
    for photos in ("large", "celeba"):  # MTCNN batched finds the points it finds one photo at a time
        assert result["batching"][photos]["landmark_difference_px_max"] < 0.01
    assert result["batching"]["celeba"]["canvas_size"] == [178, 218]
    assert set(result["landmark_shift_px_max"]) == {"shrunk", "at_90_percent"}


@pytest.fixture
def photos(shared_celeba: Path, tmp_path: Path) -> Path:
    prepare_photos.make_photos(shared_celeba / "img_align_celeba.zip", tmp_path, photos=2, scale=6)
    return tmp_path / "people"


def test_large_photos_are_made_and_a_shrunk_detection_lands_near_the_full_one(photos: Path, tmp_path: Path) -> None:
    from facegen.data.folder import FaceFolder
    from facegen.data.prepare import LandmarkAlign

    faces = FaceFolder(photos)
    assert len(faces) == 2 and faces.load_image(0).size == (178 * 6, 218 * 6)
    shift = prepare_photos.landmark_shift(
        LandmarkAlign(64, max_detect_side=prepare_photos.NO_SHRINKING),
        LandmarkAlign(64, max_detect_side=400),
        faces.load_image(0),
    )
    assert 0 <= shift < 4  # crop pixels
    rate, crops = prepare_photos.timed_prepare(photos, tmp_path / "out", 400)
    assert rate > 0 and crops.shape == (2, 64, 64, 3)
