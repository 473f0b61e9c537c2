"""Scale-out on Dask (issue 30): prepare, the teacher and facenet embeddings and generate give the same bytes on a
LocalCluster of 2 workers as in one process; the compute settings refuse what cannot work, in one line."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from facenet_pytorch import InceptionResnetV1
from PIL import Image
from prefect import flow, task

from facegen.config import ComputeConfig, GenerateConfig, ParamsError, SyntheticDatasetConfig, load_params
from facegen.data.folder import FaceFolder
from facegen.data.prepare import CenterCropResize, prepare_faces
from facegen.mapping import local_map
from facegen.synthetic.run import generate_datasets
from pipelines.scale_out import ComputeUnavailable, DaskMapper, check_reachable, mapper_for, run_scaled_out
from recognition.models.backbone import save_backbone
from recognition.models.embeddings import load_embedder
from recognition.models.teacher import DlibTeacher
from tests.support.faces import copy_people
from tests.support.synthetic import ATTENDANCE, files, prepare_demo, tiny_checkpoint

TWO_WORKERS = ComputeConfig(dask_workers=2)


# ---- settings -------------------------------------------------------------------------------------------------


def _params(tmp_path: Path, compute: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"compute": compute}))
    return path


def test_no_compute_setting_runs_here_as_before(tmp_path) -> None:
    config = load_params(_params(tmp_path, {})).compute
    assert config == ComputeConfig() and not config.enabled and mapper_for(config) is None
    assert run_scaled_out(config, lambda x, mapper: (x, mapper), 3) == (3, None)
    assert isinstance(mapper_for(ComputeConfig(dask_workers=2)), DaskMapper)


def test_address_and_local_cluster_together_are_refused(tmp_path) -> None:
    with pytest.raises(ParamsError, match=r"compute.dask_address=tcp://h:8786 and compute.dask_workers=2") as err:
        load_params(_params(tmp_path, {"dask_address": "tcp://h:8786", "dask_workers": 2}))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("bad", ["tcp://", "not an address", "tcp://host:port"])
def test_a_malformed_address_is_refused_naming_the_setting(tmp_path, bad) -> None:
    with pytest.raises(ParamsError, match=r"compute\.dask_address: .*not a Dask scheduler address") as err:
        load_params(_params(tmp_path, {"dask_address": bad}))
    assert "\n" not in str(err.value)


def test_an_address_where_no_scheduler_listens_is_one_line_naming_the_setting() -> None:
    import socket

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = ComputeConfig(dask_address=f"tcp://127.0.0.1:{port}")
    with pytest.raises(ComputeUnavailable, match=rf"^compute\.dask_address=tcp://127\.0\.0\.1:{port}: no Dask") as e:
        run_scaled_out(config, lambda mapper: None)
    assert "\n" not in str(e.value) and "dask scheduler" in str(e.value)
    check_reachable("ucx://somewhere:1234")  # other protocols are left to the Dask client


# ---- the mapped path in this process ----------------------------------------------------------------------------


def test_prepare_through_a_mapper_writes_the_same_bytes(shared_faces64: Path, tmp_path: Path) -> None:
    faces = FaceFolder(copy_people(shared_faces64, tmp_path / "people", n_people=2, per_person=5))
    prepare_faces(faces, tmp_path / "plain", CenterCropResize(32), workers=0, batch_size=4)
    prepare_faces(faces, tmp_path / "mapped", CenterCropResize(32), workers=0, batch_size=4, mapper=local_map)
    assert files(tmp_path / "mapped") == files(tmp_path / "plain")


# ---- on a LocalCluster of 2 workers ------------------------------------------------------------------------------


def _write_prepare_params(root: Path, people: Path, out: Path, compute: dict) -> Path:
    params = {
        "data": {"source": "folder", "image_size": 64, "folder": {"root": str(people)}},
        "prepare": {"out": str(out), "batch_size": 8},  # chunks of 8 photos: 4 chunks over 2 workers
        "compute": compute,
    }
    (root / f"{out.name}.yaml").write_text(yaml.safe_dump(params))
    return root / f"{out.name}.yaml"


@pytest.mark.slow
def test_prepare_on_two_dask_workers_writes_the_same_bytes(shared_faces64: Path, tmp_path: Path) -> None:
    """The prepare stage's flow on 30 real faces64 photos (MTCNN landmarks, alignment): plain and on Dask."""
    from pipelines.prepare import prepare_flow

    people = copy_people(shared_faces64, tmp_path / "people", n_people=6, per_person=5)
    plain = _write_prepare_params(tmp_path, people, tmp_path / "plain", {})
    dask = _write_prepare_params(tmp_path, people, tmp_path / "dask", {"dask_workers": 2})
    report = prepare_flow(str(plain), metrics=tmp_path / "plain.json")
    assert report.images_in == 30 and report.align == "landmarks" and report.images_written >= 28
    on_dask = prepare_flow(str(dask), metrics=tmp_path / "dask.json")
    assert on_dask.images_written == report.images_written
    assert files(tmp_path / "dask") == files(tmp_path / "plain")


@pytest.mark.slow
def test_teacher_embeddings_stage_on_two_dask_workers_writes_the_same_bytes(shared_faces64, tmp_path, monkeypatch):
    """The teacher_embeddings stage's flow, plain and with compute.dask_workers: 2, on 40 prepared real faces."""
    from pipelines.teacher_embeddings import teacher_embeddings_flow

    monkeypatch.chdir(tmp_path)  # the stage writes metrics/teacher_embeddings.json here
    faces = FaceFolder(copy_people(shared_faces64, tmp_path / "people", n_people=5, per_person=8))
    prepare_faces(faces, tmp_path / "prepared", CenterCropResize(64), workers=0)
    for name, compute in (("plain", {}), ("dask", {"dask_workers": 2})):
        params = {
            "prepare": {"out": str(tmp_path / "prepared")},
            "recognition": {"teacher": {"workers": 1, "embeddings": str(tmp_path / name / "teacher")}},
            "compute": compute,
        }
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(params))
        report = teacher_embeddings_flow(str(tmp_path / f"{name}.yaml"))
        assert report["faces"] == 40 and report["embedded"] >= 38
    assert files(tmp_path / "dask" / "teacher") == files(tmp_path / "plain" / "teacher")


@task
def _embed_both(images: np.ndarray, backbone: Path, mapper=None) -> tuple[np.ndarray, np.ndarray]:
    teacher = DlibTeacher(workers=1, chunk_size=8, mapper=mapper).embed(images)
    facenet = load_embedder(backbone, input_size=80, batch_size=4, mapper=mapper).embed(images)
    return teacher, facenet


@flow(validate_parameters=False)
def _embeddings_flow(images: np.ndarray, backbone: Path, compute: ComputeConfig) -> tuple[np.ndarray, np.ndarray]:
    return run_scaled_out(compute, _embed_both, images, backbone)


@pytest.mark.slow
def test_teacher_and_facenet_embeddings_on_two_dask_workers_are_the_same_bytes(shared_faces64, tmp_path) -> None:
    root = copy_people(shared_faces64, tmp_path / "people", n_people=4, per_person=6)
    images = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in sorted(root.glob("*/*.jpg"))])
    torch.manual_seed(0)
    save_backbone(InceptionResnetV1().eval(), tmp_path / "backbone.pt", {"pretrained": "none"})
    teacher, facenet = _embeddings_flow(images, tmp_path / "backbone.pt", ComputeConfig())
    teacher_dask, facenet_dask = _embeddings_flow(images, tmp_path / "backbone.pt", TWO_WORKERS)
    assert teacher.shape == (24, 128) and facenet.shape == (24, 512)
    assert teacher_dask.tobytes() == teacher.tobytes()  # 3 chunks of 8 faces
    assert facenet_dask.tobytes() == facenet.tobytes()  # 1 chunk of 8 batches of 4 faces


@pytest.mark.slow
def test_embeddings_on_a_running_scheduler_named_by_its_address(shared_faces64, tmp_path) -> None:
    """compute.dask_address: a scheduler and 2 workers started apart from the stage, as `dask scheduler` and
    `dask worker` start them (here a LocalCluster in this process, reached only through its address)."""
    from distributed import LocalCluster

    root = copy_people(shared_faces64, tmp_path / "people", n_people=2, per_person=8)
    images = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in sorted(root.glob("*/*.jpg"))])
    torch.manual_seed(1)
    save_backbone(InceptionResnetV1().eval(), tmp_path / "backbone.pt", {"pretrained": "none"})
    teacher, facenet = _embeddings_flow(images, tmp_path / "backbone.pt", ComputeConfig())
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        on_cluster = ComputeConfig(dask_address=cluster.scheduler_address)
        teacher_dask, facenet_dask = _embeddings_flow(images, tmp_path / "backbone.pt", on_cluster)
    assert teacher_dask.tobytes() == teacher.tobytes() and facenet_dask.tobytes() == facenet.tobytes()


@task
def _generate(config: GenerateConfig, prepared: Path, mapper=None) -> list:
    return generate_datasets(config, ATTENDANCE, prepared, mapper=mapper)


@flow(validate_parameters=False)
def _generate_flow(config: GenerateConfig, prepared: Path, compute: ComputeConfig) -> list:
    return run_scaled_out(compute, _generate, config, prepared)


@pytest.mark.slow
def test_generate_on_two_dask_workers_writes_the_same_bytes(tmp_path: Path) -> None:
    prepared = prepare_demo(tmp_path / "inputs")
    checkpoint = tiny_checkpoint(prepared, tmp_path / "inputs" / "gan")
    datasets = (
        SyntheticDatasetConfig(name="balanced", mode="per_attribute", attributes=("Eyeglasses", "Smiling"), n=25),
        SyntheticDatasetConfig(name="edits", mode="edit", attributes="all", sources="enrol"),
    )

    def config(out: Path) -> GenerateConfig:
        return GenerateConfig(checkpoint=checkpoint, out=out, chunk_size=16, datasets=datasets)

    plain = _generate_flow(config(tmp_path / "plain"), prepared, ComputeConfig())
    on_dask = _generate_flow(config(tmp_path / "dask"), prepared, TWO_WORKERS)
    assert [r.images for r in on_dask] == [r.images for r in plain] and all(r.images for r in plain)
    for name in ("balanced", "edits"):
        assert files(tmp_path / "dask" / name) == files(tmp_path / "plain" / name)


def test_a_worker_whose_torch_chose_other_cpu_kernels_is_refused(monkeypatch) -> None:
    """A worker that already computed with other kernels (AVX-512 where the run uses AVX2) would give other floats."""
    import facegen.mapping as mapping

    for name in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA"):  # restored after the test
        monkeypatch.setenv(name, os.environ.get(name, "unset"))
    monkeypatch.setattr(mapping, "_KERNELS_SET", False)
    here = mapping.torch_kernels()
    mapping.match_torch(torch.get_num_threads(), here)  # the process that made them: nothing to change
    other = {**here, "ATEN_CPU_CAPABILITY": "zvector", "from": "another process"}
    with pytest.raises(RuntimeError, match="start the worker with ATEN_CPU_CAPABILITY=zvector"):
        mapping.match_torch(torch.get_num_threads(), other)
