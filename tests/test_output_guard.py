"""Nothing of the user's is ever overwritten (issue 31, class 1): every output setting of params.yaml and every
writer behind it refuses a folder or file facegen did not write, an input, and an output inside another output."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from facegen.config import GanConfig, Params, ParamsError, load_params
from facegen.data.demo import DemoSpec, make_demo_celeba
from facegen.data.folder import FaceFolder
from facegen.data.photo_folder import write_people, write_photo_folder
from facegen.data.prepare import CenterCropResize, prepare_faces
from facegen.gan.training_loop import train_gan
from facegen.io import Layout, UnsafeOutputError
from facegen.metrics.attribute_classifier import AttributeClassifier
from facegen.report.page import write_page
from facegen.synthetic.writer import DatasetJob, write_dataset
from recognition.models.backbone import DistilledFacenet, save_backbone
from recognition.models.teacher import write_teacher_embeddings
from recognition.augmentation.verified_edits import TABLE_COLUMNS, MadeFaces, write_made_faces
from tests.support.photos import make_people

REPO = Path(__file__).resolve().parents[1]
PRECIOUS = b"years of work"


class _NoPhotos:
    """A CelebA stand-in with no photos: the guard must refuse before any is read."""

    annotations = pd.DataFrame({"image_id": [], "identity": []})


def _job(out: Path) -> DatasetJob:
    return DatasetJob(out.name, out.parent, pd.DataFrame(), (), {"params_sha256": "x"}, 8, 1)


def _made() -> MadeFaces:
    return MadeFaces(np.zeros((0, 8, 8, 3), np.uint8), pd.DataFrame(columns=list(TABLE_COLUMNS)), np.zeros((0, 128)))


# Each output setting's writer, called with the path it would write (the folder or file under test).
WRITERS: dict[str, Callable[[Path], object]] = {
    "data.demo.root": lambda out: make_demo_celeba(out, DemoSpec(identities=2, images_per_identity=2)),
    "prepare.out": lambda out: prepare_faces(
        FaceFolder(make_people(out.parent / "photos_in")), out, CenterCropResize(16), workers=0
    ),
    "gan.out": lambda out: train_gan(GanConfig(out=out), out.parent / "no_prepared"),
    "gan_baseline.out": lambda out: train_gan(GanConfig(out=out), out.parent / "no_prepared"),
    "generate.out": lambda out: write_dataset(_job(out), None, None),  # a data set folder in generate.out
    "evaluate.classifier_out": lambda out: AttributeClassifier(("Male",), 32, 8).save(out),
    "recognition.teacher.embeddings": lambda out: write_teacher_embeddings(
        out, np.zeros((1, 128)), pd.DataFrame(), {"faces": 1, "fingerprint": "dlib"}
    ),
    "recognition.distill.out": lambda out: save_backbone(DistilledFacenet(), out, {}),
    "augmentation.out": lambda out: write_made_faces(out, _made(), {"threshold": 0.5}),
    "photo_folder.out": lambda out: write_photo_folder(_NoPhotos(), pd.DataFrame({"identity": []}), out),
    "photo_folder.people_csv": lambda out: write_people(pd.DataFrame({"identity": ["1"], "photos": [5]}), out),
    "report.out": lambda out: write_page(out, "report", "", []),
}
FILE_OUTPUTS = {"evaluate.classifier_out", "recognition.distill.out", "photo_folder.people_csv", "report.out"}
DOWNLOAD = "data.celeba.root"  # the download's own tests (tests/test_download.py) cover its root


def test_every_output_setting_has_a_guarded_writer_here() -> None:
    """A new output setting must join WRITERS (and so these tests) before it can pass."""
    assert set(Params(gan_baseline=GanConfig(out=Path("b"))).outputs()) - {DOWNLOAD} == set(WRITERS)


@pytest.mark.parametrize("setting", sorted(WRITERS))
def test_a_writer_refuses_what_facegen_did_not_write(setting: str, tmp_path: Path) -> None:
    out = tmp_path / "target"
    if setting in FILE_OUTPUTS:  # a user's file, then a folder, at the output's path
        out.write_bytes(PRECIOUS)
        with pytest.raises(UnsafeOutputError, match="target exists and is not"):
            WRITERS[setting](out)
        assert out.read_bytes() == PRECIOUS
        out.unlink()
        out.mkdir()
        (out / "mine.txt").write_bytes(PRECIOUS)
        with pytest.raises(UnsafeOutputError, match="target exists and is not a plain file"):
            WRITERS[setting](out)
    else:  # a user's folder; then one that also holds a file of the marker's name, written by someone else
        out.mkdir()
        (out / "mine.txt").write_bytes(PRECIOUS)
        with pytest.raises(UnsafeOutputError, match=r"target is not a folder of .* that facegen wrote \(it "):
            WRITERS[setting](out)
        (out / "mine.txt").unlink()
        for name in ("meta.json", "demo.json", "metrics.csv", ".facegen_photo_folder"):  # facegen's names
            (out / name).write_text('{"image_size": 64, "images_written": 9, "spec": {}, "faces": 1}\n')
        (out / "mine.txt").write_bytes(PRECIOUS)
        with pytest.raises(UnsafeOutputError, match="target is not a folder of"):
            WRITERS[setting](out)
    assert (out / "mine.txt").read_bytes() == PRECIOUS


def test_a_folder_is_facegen_s_only_by_its_stamp(tmp_path: Path) -> None:
    """Entries that fit the layout and a marker with facegen's keys are not enough: the stamp must name the kind."""
    layout = Layout("prepared faces", "meta.json", ("images.npy", "meta.json"))
    (tmp_path / "images.npy").write_bytes(PRECIOUS)
    (tmp_path / "meta.json").write_text('{"image_size": 64, "images_written": 1200, "note": "mine"}')
    assert layout.foreign(tmp_path).startswith("it has no .facegen.json naming it facegen's")
    (tmp_path / ".facegen.json").write_text('{"facegen": "teacher descriptors", "version": 1}')
    assert "says {'facegen': 'teacher descriptors'" in layout.foreign(tmp_path)
    (tmp_path / ".facegen.json").write_bytes(b"\xff\xfe not json")
    assert layout.foreign(tmp_path) == "its .facegen.json is not facegen's"
    layout.stamp(tmp_path)
    assert layout.foreign(tmp_path) is None
    assert layout.foreign(tmp_path / "missing") is None
    (tmp_path / ".images.npy.tmp-1-x").write_bytes(b"")  # a killed run's leftover is part of any layout
    assert layout.foreign(tmp_path) is None
    (tmp_path / "notes.txt").write_bytes(PRECIOUS)
    assert layout.foreign(tmp_path) == "it holds notes.txt, which no folder of prepared faces has"


def test_gan_out_keeps_another_tools_training_folder(tmp_path: Path) -> None:
    """A folder with a `step,...` log and grid_*.png / edits_*.png of another tool is not facegen's GAN folder."""
    out = tmp_path / "runs"
    out.mkdir()
    (out / "metrics.csv").write_text("step,loss,acc\n1,0.5,0.7\n")
    (out / "grid_final.png").write_bytes(PRECIOUS)
    (out / "edits_holiday.png").write_bytes(PRECIOUS)
    with pytest.raises(UnsafeOutputError, match="runs is not a folder of GAN training outputs .*no .facegen.json"):
        train_gan(GanConfig(out=out), tmp_path / "no_prepared")
    assert sorted(p.name for p in out.iterdir()) == ["edits_holiday.png", "grid_final.png", "metrics.csv"]


def test_a_file_is_facegen_s_checkpoint_only_with_exactly_its_entries(tmp_path: Path) -> None:
    """Another tool's {"backbone", "head", "epoch"} checkpoint is not a facegen backbone file: never replaced."""
    import torch

    theirs = tmp_path / "arcface_r50.pt"
    torch.save({"backbone": {"w": torch.ones(2)}, "head": {"w": torch.ones(2)}, "epoch": 90}, theirs)
    before = theirs.read_bytes()
    with pytest.raises(UnsafeOutputError, match="arcface_r50.pt exists and is not a backbone checkpoint"):
        save_backbone(None, theirs, {"pretrained": "dlib"})
    assert theirs.read_bytes() == before
    save_backbone(None, tmp_path / "ours.pt", {"pretrained": "dlib"})
    save_backbone(None, tmp_path / "ours.pt", {"pretrained": "dlib", "again": True})  # its own file: replaced


def test_a_lock_file_is_never_written_through_a_link_or_over_a_users_file(tmp_path: Path) -> None:
    from facegen.locks import ForeignLockFileError, lock_path, output_lock

    thesis = tmp_path / "thesis.txt"
    thesis.write_bytes(PRECIOUS)
    out = tmp_path / "shared" / "prepared"
    out.parent.mkdir()
    lock_path(out).symlink_to(thesis)
    with pytest.raises(ForeignLockFileError, match="is a symbolic link"), output_lock(out):
        pass
    lock_path(out).unlink()
    lock_path(out).write_bytes(PRECIOUS)  # a file of the user's where the lock goes
    with pytest.raises(ForeignLockFileError, match="is not a lock file facegen wrote"), output_lock(out):
        pass
    assert thesis.read_bytes() == PRECIOUS and lock_path(out).read_bytes() == PRECIOUS
    lock_path(out).unlink()
    with output_lock(out):  # and the lock works
        assert lock_path(out).is_file()


def test_a_folder_facegen_wrote_is_replaced(tmp_path: Path) -> None:
    """The guard refuses only what is not ours: a second run replaces the first one's output."""
    WRITERS["prepare.out"](tmp_path / "prepared")
    first = (tmp_path / "prepared" / "images.npy").stat().st_ino
    WRITERS["prepare.out"](tmp_path / "prepared")
    assert (tmp_path / "prepared" / "images.npy").stat().st_ino != first
    write_people(pd.DataFrame({"identity": ["1"], "photos": [5]}), tmp_path / "people.csv")
    write_people(pd.DataFrame({"identity": ["2"], "photos": [6]}), tmp_path / "people.csv")
    assert (tmp_path / "people.csv").read_text() == "identity,photos\n2,6\n"


def _load(**overrides: object) -> Params:
    return load_params(REPO / "params.yaml", overrides)


@pytest.mark.parametrize("setting", sorted(Params().outputs()))
def test_no_output_is_or_holds_or_lies_in_an_input_or_another_output(setting: str, tmp_path: Path) -> None:
    inputs = {"data.folder.root": tmp_path / "photos", "data.local.root": tmp_path / "celeba"}
    for name, path in inputs.items():  # the output is an input, lies inside one, or holds one
        for out in (path, path / "sub", path.parent):
            made_there = (name, setting) in {("data.folder.root", "photo_folder.out"), ("data.local.root", DOWNLOAD)}
            if made_there and out != path / "sub":
                continue  # that stage makes this input (studies/ownphotos; a downloaded copy read as local)
            with pytest.raises(ParamsError, match=f"{setting}=.* overlaps the input {name}="):
                _load(**{name: str(path), setting: str(out)})
    other = "report.out" if setting != "report.out" else "prepare.out"
    inside = Path(str(_load().outputs()[other])) / "nested"
    with pytest.raises(ParamsError, match="overlap: one stage's output would replace or delete the other's"):
        _load(**{setting: str(inside)})


def test_an_input_made_by_the_output_it_lies_in_is_allowed() -> None:
    params = _load()
    assert params.generate.checkpoint.parent == params.gan.out  # the generator's checkpoint, in gan.out
    studies = [REPO / "studies" / s / "params.yaml" for s in ("faces64", "ownphotos", "celeba64")]
    for path in studies:  # each study's own settings pass (paths are relative to its folder)
        with pytest.MonkeyPatch.context() as patch:
            patch.chdir(path.parent)
            load_params(path)
    with pytest.raises(ParamsError, match="gan.out=models/gan and evaluate.classifier_out=models/gan/checkpoint.pt"):
        _load(**{"evaluate.classifier_out": "models/gan/checkpoint.pt"})  # the generator is not the judge's


def test_a_tilde_in_a_path_setting_is_the_home_folder() -> None:
    params = _load(**{"gan.out": "~/facegen_gan", "recognition.distill.extra_prepared": ["~/a", "b"]})
    assert params.gan.out == Path.home() / "facegen_gan"
    assert params.recognition.distill.extra_prepared == (Path.home() / "a", Path("b"))


def test_a_small_params_file_of_aliases_gives_a_short_error(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{k}: &a{k} [{', '.join([f'*a{k - 1}'] * 9)}]" for k in range(1, 9)]  # 9**9 strings, 1 KB of YAML
    (tmp_path / "params.yaml").write_text("\n".join(lines) + "\ndata:\n  image_size: *a8\nrecognition:\n  seeds: *a8\n")
    with pytest.raises(ParamsError) as err:
        load_params(tmp_path / "params.yaml")
    message = str(err.value)
    assert len(message) < 3000 and "data.image_size" in message and "\n" not in message


def test_folders_facegen_wrote_before_stamps_are_still_its_own(tmp_path: Path) -> None:
    """A persisted GAN folder and a demo made before stamps existed are recognised by content no other tool
    writes (the trainer's checkpoint entries; demo.json's exact record), so `make demo` goes on after an upgrade."""
    import dataclasses
    import json

    import torch

    from facegen.data.demo import LAYOUT as DEMO_LAYOUT
    from facegen.gan.training_loop import LAYOUT as GAN_LAYOUT

    gan = tmp_path / "gan"
    gan.mkdir()
    trainer_entries = {"scaler": {}, "data_rng": {}, "noise_rng": {}, "torch_rng": torch.get_rng_state()}
    torch.save({"config": {"model": "cgan"}, "resolution": 32, "step": 4, **trainer_entries}, gan / "checkpoint.pt")
    (gan / "grid_000004.png").write_bytes(b"png")
    assert GAN_LAYOUT.foreign(gan) is None
    torch.save({"config": {"model": "cgan"}, "resolution": 32, "step": 4}, gan / "checkpoint.pt")  # not the trainer's
    assert "no .facegen.json" in GAN_LAYOUT.foreign(gan)

    demo = tmp_path / "demo"
    demo.mkdir()
    record = {"spec": dataclasses.asdict(DemoSpec()), "generator_md5": "0" * 32}
    (demo / "demo.json").write_text(json.dumps(record))
    (demo / "list_attr_celeba.txt").write_text("1\n")
    assert DEMO_LAYOUT.foreign(demo) is None
    (demo / "demo.json").write_text(json.dumps({**record, "note": "mine"}))
    assert "no .facegen.json" in DEMO_LAYOUT.foreign(demo)


def test_files_a_user_adds_inside_a_facegen_folder_make_it_the_users(tmp_path: Path) -> None:
    """Every entry below an output folder must be one facegen writes there, not only its top-level names: a
    photo added under a data set's images/, a person added to the photo folder."""
    from facegen.data.photo_folder import LAYOUT as PHOTO_LAYOUT
    from facegen.synthetic.writer import LAYOUT as DATASET_LAYOUT

    dataset = tmp_path / "balanced"
    (dataset / "images").mkdir(parents=True)
    (dataset / "images" / "000000.png").write_bytes(b"png")
    (dataset / "meta.json").write_text("{}")
    DATASET_LAYOUT.stamp(dataset)
    assert DATASET_LAYOUT.foreign(dataset) is None
    (dataset / "images" / "my_face.jpg").write_bytes(PRECIOUS)
    assert DATASET_LAYOUT.foreign(dataset) == "it holds images/my_face.jpg, which no folder of synthetic data set has"

    photos = tmp_path / "photos"
    (photos / "1042").mkdir(parents=True)
    (photos / "1042" / "000123.jpg").write_bytes(b"jpg")
    (photos / ".facegen_photo_folder").write_text("photos written by facegen.data.photo_folder\n")
    PHOTO_LAYOUT.stamp(photos)
    assert PHOTO_LAYOUT.foreign(photos) is None
    (photos / "alice").mkdir()
    (photos / "alice" / "me.jpg").write_bytes(PRECIOUS)
    assert "it holds alice, alice/me.jpg" in PHOTO_LAYOUT.foreign(photos)


def test_only_temporaries_of_runs_no_longer_alive_are_removed(tmp_path: Path) -> None:
    """A killed run's `.<name>.tmp-<pid>-...` goes; a user's `.prep.tmp-backup/` or `.prep.tmp-old.txt` stays,
    and a name with glob characters matches only itself."""
    from facegen.io import remove_leftovers

    (tmp_path / ".prep.tmp-999999-abc").mkdir()  # a dead run's (pid 999999 is not alive)
    (tmp_path / ".prep.tmp-backup").mkdir()
    (tmp_path / ".prep.tmp-backup" / "thesis.txt").write_bytes(PRECIOUS)
    (tmp_path / ".prep.tmp-old.txt").write_bytes(PRECIOUS)
    (tmp_path / ".thesis.tmp-999999-x").write_bytes(PRECIOUS)  # another name's
    remove_leftovers(tmp_path, "*")  # `prepare.out='dir/*'`: a literal name, not a pattern
    remove_leftovers(tmp_path, "prep")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".prep.tmp-backup",
        ".prep.tmp-old.txt",
        ".thesis.tmp-999999-x",
    ]


def test_the_report_is_refused_before_any_asset_is_written_beside_a_users_page(tmp_path: Path) -> None:
    from facegen.report.study import write_study_report

    site = tmp_path / "site"
    (site / "assets").mkdir(parents=True)
    (site / "index.html").write_bytes(PRECIOUS)
    (site / "assets" / "gan_training.png").write_bytes(PRECIOUS)
    with pytest.raises(UnsafeOutputError, match="index.html exists and is not a facegen report page"):
        write_study_report(Params(), site / "index.html")
    assert (site / "assets" / "gan_training.png").read_bytes() == PRECIOUS
