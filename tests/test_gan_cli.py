"""`facegen train`, `facegen sample`, `facegen edit`: real commands on a tiny prepared cache of real faces."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facegen.gan.inference import load_photos
from tests.support.faces import copy_people

FACEGEN = str(Path(sys.executable).parent / "facegen")
REPO = Path(__file__).resolve().parents[1]
TINY = [
    "--set",
    "gan.attributes=[Male, Smiling]",
    "--set",
    "gan.base_channels=4",
    "--set",
    "gan.editor_channels=4",
    "--set",
    "gan.editor_res_blocks=1",
    "--set",
    "gan.z_dim=8",
    "--set",
    "gan.batch_size=4",
    "--set",
    "gan.sample_every=2",
    "--set",
    "gan.checkpoint_every=2",
    # The pre-32-px demo optimiser: 4 steps under the demo's faster one leave samples a flat grey that
    # different seeds no longer change by a whole grey level.
    "--set",
    "gan.lr_g=2e-4",
    "--set",
    "gan.lr_d=2e-4",
    "--set",
    "gan.betas=[0.0, 0.99]",
]


def _facegen(*args: str) -> subprocess.CompletedProcess:
    # This checkout's code, whichever checkout the installed `facegen` script points at.
    return subprocess.run([FACEGEN, *args], capture_output=True, text=True, env=os.environ | {"PYTHONPATH": str(REPO)})


@pytest.fixture(scope="module")
def trained(tmp_path_factory, shared_faces64: Path, shared_celeba: Path) -> Path:
    """A 2-step checkpoint trained by `facegen train` on a 32 x 32 cache of 16 faces64 photos, then resumed to 4."""
    root = tmp_path_factory.mktemp("cli")
    people = copy_people(shared_faces64, root / "people", n_people=4, per_person=4)
    common = [
        "--params",
        str(REPO / "params.yaml"),
        "--set",
        f"prepare.out={root / 'cache'}",
        *TINY,
        "--set",
        f"gan.out={root / 'gan'}",
    ]
    prepared = _facegen(
        "data",
        "prepare",
        *common,
        "--set",
        "data.source=folder",
        "--set",
        f"data.folder.root={people}",
        "--set",
        f"data.folder.celeba_root={shared_celeba}",
        "--set",
        "data.image_size=32",
        "--set",
        "prepare.workers=0",
    )
    assert prepared.returncode == 0, prepared.stderr
    first = _facegen("train", *common, "--set", "gan.steps=2", "--device", "cpu")
    assert first.returncode == 0, first.stderr
    assert "cgan: step 0 -> 2" in first.stdout
    resumed = _facegen("train", *common, "--set", "gan.steps=4", "--device", "cpu")
    assert resumed.returncode == 0, resumed.stderr
    assert "cgan: step 2 -> 4" in resumed.stdout  # continued from the checkpoint, not from scratch
    assert {p.name for p in (root / "gan").iterdir()} >= {
        "checkpoint.pt",
        "metrics.csv",
        "grid_000004.png",
        "edits_000004.png",
    }
    return root / "gan" / "checkpoint.pt"


def test_sample_writes_a_seeded_grid(trained: Path, tmp_path: Path) -> None:
    runs = []
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        result = _facegen(
            "sample",
            "-c",
            str(trained),
            "--attr",
            "Smiling=1",
            "--attr",
            "Male=0",
            "-n",
            "3",
            "-o",
            str(tmp_path / f"{name}.png"),
            "--seed",
            seed,
            "--batch-size",
            "2",
            "--device",
            "cpu",
        )
        assert result.returncode == 0, result.stderr
        runs.append(np.asarray(Image.open(tmp_path / f"{name}.png")))
    assert runs[0].shape == (2 + 34, 2 + 3 * 34, 3)  # 3 faces of 32 x 32 in one row, 2 px padding
    assert np.array_equal(runs[0], runs[1]) and not np.array_equal(runs[0], runs[2])


def test_edit_one_photo_and_several(trained: Path, tmp_path: Path, shared_faces64: Path) -> None:
    photos = [str(p) for p in sorted(next(iter(sorted(shared_faces64.iterdir()))).iterdir())[:3]]
    one = _facegen(
        "edit", photos[0], "--set", "Smiling=1", "-c", str(trained), "-o", str(tmp_path / "one.png"), "--device", "cpu"
    )
    assert one.returncode == 0, one.stderr
    assert Image.open(tmp_path / "one.png").size == (32, 32)  # the edited face at the model's resolution
    several = _facegen(
        "edit",
        *photos,
        "--set",
        "Smiling=1",
        "--set",
        "Male=0",
        "-c",
        str(trained),
        "-o",
        str(tmp_path / "several.png"),
        "--batch-size",
        "2",
        "--device",
        "cpu",
    )
    assert several.returncode == 0, several.stderr
    grid = np.asarray(Image.open(tmp_path / "several.png"))
    assert grid.shape == (2 + 34, 2 + 3 * 34, 3)
    # Batching changes nothing but float rounding (CPU kernels sum in a batch-dependent order): one grey level at most.
    alone = np.asarray(Image.open(tmp_path / "one.png")).astype(int)
    assert np.abs(grid[2:34, 2:34].astype(int) - alone).max() <= 1
    # --confine: a Smiling edit keeps the photo above the mouth band (as load_photos resized it); unconfined, the
    # same edit changes it there too
    confined = _facegen(
        "edit", photos[0], "--set", "Smiling=1", "-c", str(trained), "-o", str(tmp_path / "kept.png"), "--confine"
    )
    assert confined.returncode == 0, confined.stderr
    photo = load_photos([Path(photos[0])], 32)[0]
    kept = np.asarray(Image.open(tmp_path / "kept.png"))
    assert np.array_equal(kept[:12], photo[:12]) and not np.array_equal(alone[:12], photo[:12])


def test_sampling_options_are_the_api_settings(trained: Path, tmp_path: Path, shared_faces64: Path) -> None:
    from facegen.config import SamplingConfig
    from facegen.gan.inference import FaceModel, load_photos

    sampled = _facegen(
        "sample",
        "-c",
        str(trained),
        "--attr",
        "Smiling=1",
        "-n",
        "1",
        "-o",
        str(tmp_path / "s.png"),
        "--seed",
        "5",
        "--candidates",
        "3",
        "--refine",
        "--strength",
        "1.5",
        "--device",
        "cpu",
    )
    assert sampled.returncode == 0, sampled.stderr
    guided = FaceModel.load(trained, sampling=SamplingConfig(candidates=3, refine=True, refine_strength=1.5))
    assert np.array_equal(
        np.asarray(Image.open(tmp_path / "s.png")), guided.sample(guided.attribute_matrix({"Smiling": 1}, 1), seed=5)[0]
    )

    photo = sorted(next(iter(sorted(shared_faces64.iterdir()))).iterdir())[0]
    edited = _facegen(
        "edit",
        str(photo),
        "--set",
        "Smiling=1",
        "--set",
        "Male=0",
        "-c",
        str(trained),
        "-o",
        str(tmp_path / "e.png"),
        "--strength",
        "3",
        "--device",
        "cpu",
    )
    assert edited.returncode == 0, edited.stderr
    strong = FaceModel.load(trained, sampling=SamplingConfig(edit_strength=3.0))
    images = load_photos([photo], strong.resolution)
    seen = strong.predict_attributes(images)
    targets = seen.clone()
    targets[:, 0], targets[:, 1] = 0, 1  # Male=0, Smiling=1
    assert np.array_equal(
        np.asarray(Image.open(tmp_path / "e.png")), strong.edit(images, targets, source_attributes=seen)[0]
    )
    zero = _facegen("edit", str(photo), "--set", "Smiling=1", "-c", str(trained), "--strength", "0")
    assert zero.returncode == 2 and "edit_strength" in zero.stderr and "Traceback" not in zero.stderr


def test_user_errors_are_one_line(trained: Path, tmp_path: Path) -> None:
    bad_name = _facegen("sample", "-c", str(trained), "--attr", "Glasses=1", "-o", str(tmp_path / "x.png"))
    assert bad_name.returncode == 2 and "unknown attribute(s) ['Glasses']" in bad_name.stderr
    bad_value = _facegen("sample", "-c", str(trained), "--attr", "Male=yes", "-o", str(tmp_path / "x.png"))
    assert bad_value.returncode == 2 and "expected NAME=0 or NAME=1, got 'Male=yes'" in bad_value.stderr
    missing = _facegen("edit", str(tmp_path / "nope.jpg"), "--set", "Male=1", "-c", str(trained))
    assert missing.returncode == 2 and "nope.jpg" in missing.stderr and "Traceback" not in missing.stderr
    no_model = _facegen("sample", "-c", str(tmp_path / "none.pt"))
    assert no_model.returncode == 2 and "run `dvc repro train_gan` first" in no_model.stderr


def test_an_output_never_replaces_a_file_facegen_did_not_write(trained: Path, tmp_path: Path, shared_faces64: Path):
    """`facegen edit me.jpg -o me.jpg` refuses (the photo is the only copy); a grid facegen wrote is replaced."""
    photo = tmp_path / "me.jpg"
    photo.write_bytes(next(iter(sorted(next(iter(sorted(shared_faces64.iterdir()))).iterdir()))).read_bytes())
    before = photo.read_bytes()
    refused = _facegen("edit", str(photo), "--set", "Smiling=1", "-c", str(trained), "-o", str(photo))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "me.jpg is the input photo" in refused.stderr and photo.read_bytes() == before
    other = tmp_path / "holiday.jpg"  # another photo of the user's, not an input
    other.write_bytes(before)
    refused = _facegen("edit", str(photo), "--set", "Smiling=1", "-c", str(trained), "-o", str(other))
    assert refused.returncode == 2 and "holiday.jpg exists and is not a facegen PNG" in refused.stderr
    assert other.read_bytes() == before
    grid = tmp_path / "grid.png"
    for seed in ("1", "2"):  # the second run replaces the first's grid
        result = _facegen("sample", "-c", str(trained), "-n", "1", "--seed", seed, "-o", str(grid), "--device", "cpu")
        assert result.returncode == 0, result.stderr
    assert Image.open(grid).info["Software"] == "facegen"
