"""Nothing lost, nothing mixed (issue 22): outputs never replace what the project did not write, one run per
output at a time, and interrupted runs (kill -9, SIGTERM) leave no workers, locks or temporary folders."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from facegen.config import DataConfig, FolderSource, GanConfig, PrepareConfig
from facegen.data.folder import FaceFolder
from facegen.data.prepare import CenterCropResize, prepare_faces
from facegen.data.prepared import PreparedFaces
from facegen.data.sources import prepare_source
from facegen.io import Layout, UnsafeOutputError, atomic_dir, check_separate
from facegen.locks import ForeignLockFileError, OutputLockedError, lock_path, output_lock, read_owner
from facegen.synthetic.writer import DatasetJob, write_dataset
from tests.support.photos import make_people
from tests.support.processes import children, wait_gone

REPO = Path(__file__).resolve().parents[1]


def _folder_source(photos: Path, out: Path) -> tuple[DataConfig, PrepareConfig]:
    data = DataConfig(source="folder", image_size=32, folder=FolderSource(root=photos, celeba_root=None))
    return data, PrepareConfig(out=out, workers=0, align="box")  # drawn test photos: no landmarks to find


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- outputs that refuse to clobber ---------------------------------------------------------------------


@pytest.mark.parametrize("out", ["photos", ".", "photos/person_0", "photos/person_0/new"])
def test_prepare_out_over_or_around_the_photos_is_refused_and_deletes_nothing(
    tmp_path: Path, monkeypatch, out: str
) -> None:
    monkeypatch.chdir(tmp_path)
    photos = make_people(tmp_path / "photos")
    (tmp_path / "notes.txt").write_text("my only copy")
    before = _tree(tmp_path)
    with pytest.raises(UnsafeOutputError, match=rf"prepare.out {out} overlaps the input"):
        prepare_source(*_folder_source(Path("photos"), Path(out)), photos)
    assert _tree(tmp_path) == before


def test_prepare_out_on_the_parent_of_the_photos_is_refused(tmp_path: Path) -> None:
    photos = make_people(tmp_path / "work" / "photos")
    before = _tree(tmp_path)
    with pytest.raises(UnsafeOutputError, match="overlaps the input"):
        prepare_source(*_folder_source(photos, tmp_path / "work"), photos)
    assert _tree(tmp_path) == before


def test_prepare_out_on_a_folder_of_other_files_is_refused(tmp_path: Path) -> None:
    photos = make_people(tmp_path / "photos")
    (tmp_path / "documents").mkdir()
    (tmp_path / "documents" / "thesis.tex").write_text("years of work")
    with pytest.raises(UnsafeOutputError, match=r"documents is not a folder of prepared faces .*\(it holds thesis.tex"):
        prepare_source(*_folder_source(photos, tmp_path / "documents"), photos)
    assert (tmp_path / "documents" / "thesis.tex").read_text() == "years of work"
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UnsafeOutputError, match="exists and is not a folder"):
        prepare_source(*_folder_source(photos, tmp_path / "afile"), photos)


def test_prepare_replaces_its_own_cache_and_fills_an_empty_folder(tmp_path: Path) -> None:
    photos = make_people(tmp_path / "photos")
    (tmp_path / "out").mkdir()
    data, prepare = _folder_source(photos, tmp_path / "out")
    assert prepare_source(data, prepare, photos).images_written == 6
    assert prepare_source(data.model_copy(update={"image_size": 64}), prepare, photos).images_written == 6
    assert PreparedFaces(tmp_path / "out").images.shape == (6, 64, 64, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "photos"]  # no lock or temporary folder left


def test_other_outputs_must_not_overlap_their_inputs(tmp_path: Path) -> None:
    from facegen.gan.training_loop import train_gan

    with pytest.raises(UnsafeOutputError, match="gan.out .* overlaps the input"):
        train_gan(GanConfig(out=tmp_path / "prepared" / "gan"), tmp_path / "prepared")
    with pytest.raises(UnsafeOutputError, match="generate.out"):
        check_separate(
            tmp_path / "models", [tmp_path / "data", tmp_path / "models" / "gan" / "checkpoint.pt"], "generate.out"
        )
    check_separate(tmp_path / "data" / "synthetic", [tmp_path / "data" / "prepared", None])  # siblings are fine


def _job(out: Path, seed: int = 0) -> DatasetJob:
    plan = pd.DataFrame(
        {
            "Smiling": [0, 1, 0, 1],
            "mode": "per_attribute",
            "seed": seed,
            "sample_index": range(4),
            "source_image": "",
            "identity": "",
            "edited_attribute": "",
            "cell": ["Smiling=0", "Smiling=1"] * 2,
            "source_row": -1,
        }
    )
    return DatasetJob("faces", out, plan, ("Smiling",), {"params_sha256": f"p{seed}", "generator_sha256": "g"}, 2, 1)


def _render(rows: pd.DataFrame):
    import numpy as np

    return np.full((len(rows), 8, 8, 3), int(rows["seed"].iloc[0]) * 50, np.uint8)


def _describe(folder: Path, manifest: pd.DataFrame, rows: pd.DataFrame) -> None:
    (folder / "datacard.md").write_text(f"{len(manifest)} faces\n")


def test_a_synthetic_data_set_never_replaces_a_folder_it_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "faces").mkdir()
    (tmp_path / "faces" / "mine.jpg").write_bytes(b"a photo")
    with pytest.raises(UnsafeOutputError, match="faces is not a folder of synthetic data set that facegen wrote"):
        write_dataset(_job(tmp_path), _render, _describe)
    assert (tmp_path / "faces" / "mine.jpg").read_bytes() == b"a photo"
    (tmp_path / "faces" / "mine.jpg").unlink()
    assert write_dataset(_job(tmp_path), _render, _describe)["images"] == 4
    assert (
        write_dataset(_job(tmp_path, seed=1), _render, _describe)["stamp"]["params_sha256"] == "p1"
    )  # its own: replaced


# --- one run per output -----------------------------------------------------------------------------------


def _hold_lock(output: Path) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-m", "tests.interrupt_target", "lock", str(output)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_live_lock_is_refused_and_a_dead_ones_lock_taken_over(tmp_path: Path, caplog) -> None:
    photos = make_people(tmp_path / "photos")
    holder = _hold_lock(tmp_path / "out")
    try:
        owner = read_owner(lock_path(tmp_path / "out"))
        assert owner["pid"] == holder.pid and owner["host"] and owner["started"]
        with pytest.raises(OutputLockedError, match=rf"out is being written by another run \(pid {holder.pid} on "):
            prepare_source(*_folder_source(photos, tmp_path / "out"), photos)
    finally:
        holder.kill()
        holder.wait()
    assert lock_path(tmp_path / "out").is_file()  # kill -9: the lock file stays, with the dead run's pid
    with caplog.at_level(logging.WARNING, logger="facegen.locks"):
        assert prepare_source(*_folder_source(photos, tmp_path / "out"), photos).images_written == 6
    assert f"taking over the lock of a run that died (pid {holder.pid}" in caplog.text
    assert not lock_path(tmp_path / "out").exists()


def test_two_generate_runs_of_one_data_set_do_not_mix(tmp_path: Path) -> None:
    holder = _hold_lock(tmp_path / "faces")
    try:
        with pytest.raises(OutputLockedError, match=f"pid {holder.pid}"):
            write_dataset(_job(tmp_path, seed=1), _render, _describe)
        assert not (tmp_path / ".faces.partial").exists()  # refused before touching the other run's work
    finally:
        holder.kill()
        holder.wait()


def test_train_gan_and_the_recognition_stages_take_their_outputs_lock(tmp_path: Path, monkeypatch) -> None:
    from facegen.gan.training_loop import train_gan
    from pipelines.pretrain_backbone import BACKBONE, pretrain_backbone_flow
    from pipelines.train_recognizer import OUTCOMES, train_recognizer_flow

    monkeypatch.chdir(tmp_path)
    for output in (tmp_path / "gan", BACKBONE, OUTCOMES / "classic.parquet"):
        output.parent.mkdir(parents=True, exist_ok=True)
    with output_lock(tmp_path / "gan"), pytest.raises(OutputLockedError, match="gan is being written"):
        train_gan(GanConfig(out=tmp_path / "gan"), tmp_path / "prepared")
    with output_lock(BACKBONE), pytest.raises(OutputLockedError, match="backbone.pt is being written"):
        pretrain_backbone_flow.fn(str(REPO / "params.yaml"))
    with output_lock(OUTCOMES / "classic.parquet"), pytest.raises(OutputLockedError, match="classic.parquet is being"):
        train_recognizer_flow.fn("classic", str(REPO / "params.yaml"))


def test_leftovers_of_killed_runs_are_removed_by_the_next_run(tmp_path: Path) -> None:
    (tmp_path / ".out.tmp-999999-abc").mkdir()
    (tmp_path / ".out.tmp-999999-abc" / "staging.npy").write_bytes(b"0" * 1000)
    (tmp_path / ".other.tmp-1-x").mkdir()  # another output's: not ours to remove
    with atomic_dir(tmp_path / "out", Layout("test output", "done", ("done",))) as tmp:
        assert tmp.name.startswith(f".out.tmp-{os.getpid()}-")  # a temporary folder names its run
        (tmp / "done").write_text("ok\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.tmp-1-x", "out"]


# --- interrupted runs leave nothing behind ---------------------------------------------------------------


def _start_prepare(tmp_path: Path) -> tuple[subprocess.Popen, list[int]]:
    """A prepare run whose two loader workers are busy, with its temporary folder in place."""
    photos = make_people(tmp_path / "photos", n_people=4, per_person=40)
    run = subprocess.Popen(
        [sys.executable, "-m", "tests.interrupt_target", "prepare", str(photos), str(tmp_path / "out")],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert run.stdout.readline().strip() == "started"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        workers = [p for p in children(run.pid) if "multiprocessing" in Path(f"/proc/{p}/cmdline").read_text()]
        if len(workers) >= 2 and list(tmp_path.glob(".out.tmp-*/staging.npy")):
            time.sleep(3)  # the workers are past their start-up, cropping
            return run, workers
        time.sleep(0.5)
    run.kill()
    pytest.fail("the prepare run did not start its two workers within 120 s")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal and /proc are Linux's")
def test_kill_9_of_prepare_takes_its_workers_along_and_the_next_run_cleans_up(tmp_path: Path) -> None:
    run, workers = _start_prepare(tmp_path)
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert wait_gone(workers) == []
    assert list(tmp_path.glob(".out.tmp-*")) and lock_path(tmp_path / "out").exists()  # what kill -9 leaves
    prepare_faces(FaceFolder(tmp_path / "photos"), tmp_path / "out", CenterCropResize(16), workers=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "photos"]
    assert json.loads((tmp_path / "out" / "meta.json").read_text())["images_written"] == 160


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
def test_sigterm_of_prepare_removes_its_temporary_folder_lock_and_workers(tmp_path: Path) -> None:
    run, workers = _start_prepare(tmp_path)
    run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=60) == 128 + signal.SIGTERM
    assert wait_gone(workers) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]


@pytest.mark.parametrize("content", [b"", b'{"pid": 1, "host": "h", "started": "s", "command": "c"}\n'])
def test_a_lock_file_hard_linked_to_a_user_file_is_refused(tmp_path: Path, content: bytes) -> None:
    out, user = tmp_path / "out", tmp_path / "notes.txt"
    user.write_bytes(content)
    lock = lock_path(out)
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.hardlink_to(user)
    with pytest.raises(ForeignLockFileError, match="is a hard link") as err, output_lock(out):
        pass
    assert str(lock) in str(err.value) and "\n" not in str(err.value)
    assert user.read_bytes() == content and lock.exists()


def test_edit_output_that_is_an_input_photo_is_refused(tmp_path: Path) -> None:
    from pipelines.cli import _check_not_an_input

    photo, other = tmp_path / "me.png", tmp_path / "friend.png"
    photo.write_bytes(b"a facegen PNG, but the user's input")
    other.write_bytes(b"another photo")
    (tmp_path / "link.png").symlink_to(photo)
    (tmp_path / "hard.png").hardlink_to(photo)
    (tmp_path / "sub").mkdir()
    for out in (photo, tmp_path / "link.png", tmp_path / "hard.png", tmp_path / "sub" / ".." / "me.png"):
        with pytest.raises(UnsafeOutputError, match="is the input photo") as err:
            _check_not_an_input(out, [other, photo])
        assert str(photo) in str(err.value)
    _check_not_an_input(tmp_path / "edited.png", [other, photo])  # a new file: fine
    _check_not_an_input(other, [photo])  # not an input here
    assert photo.read_bytes() == b"a facegen PNG, but the user's input"
