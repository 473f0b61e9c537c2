"""Synthetic data sets: plans per mode, balance, byte-identical reruns, kill-and-resume, filter, loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

import facegen.synthetic.writer as writer
from facegen.config import (
    GenerateConfig,
    ParamsError,
    QualityFilterConfig,
    SamplingConfig,
    SyntheticDatasetConfig,
    load_params,
)
from facegen.data.attendance import assign_roles
from facegen.data.prepared import PreparedFaces
from facegen.datasets import SyntheticFaces, load_manifest
from facegen.gan.inference import FaceModel
from facegen.metrics.attribute_classifier import AttributeClassifier
from facegen.synthetic.plan import edit_plan, real_marginals, sampling_plan
from facegen.synthetic.quality import QualityFilter
from facegen.synthetic.run import SyntheticFactory
from tests.support.synthetic import ATTENDANCE, ATTRIBUTES, files, prepare_demo, tiny_checkpoint

CONTRACT_COLUMNS = [
    "file",
    *ATTRIBUTES,
    "mode",
    "seed",
    "sample_index",
    "source_image",
    "identity",
    "edited_attribute",
    "generator_sha256",
    "params_sha256",
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("inputs")
    prepared = prepare_demo(root)
    return prepared, tiny_checkpoint(prepared, root / "gan")


def config(inputs, out: Path, *datasets: SyntheticDatasetConfig, chunk_size: int = 16) -> GenerateConfig:
    return GenerateConfig(checkpoint=inputs[1], out=out, chunk_size=chunk_size, datasets=datasets)


PER_ATTRIBUTE = SyntheticDatasetConfig(
    name="balanced", mode="per_attribute", attributes=("Eyeglasses", "Smiling"), n=25
)
EDITS = SyntheticDatasetConfig(name="edits", mode="edit", attributes="all", sources="enrol")


def test_per_attribute_and_combination_plans(inputs) -> None:
    real = PreparedFaces(inputs[0]).annotations
    plan = sampling_plan(PER_ATTRIBUTE, ATTRIBUTES, real, chunk_size=16)
    assert len(plan) == 2 * 2 * 25
    for name in ("Eyeglasses", "Smiling"):
        for value in (0, 1):
            assert (plan["cell"] == f"{name}={value}").sum() == 25
            assert (plan.loc[plan["cell"] == f"{name}={value}", name] == value).all()
    # Rows of a chunk share one seed; sample_index counts within it.
    assert plan.groupby(np.arange(len(plan)) // 16)["seed"].nunique().eq(1).all()
    assert plan["sample_index"].tolist() == [i % 16 for i in range(len(plan))]

    combos = sampling_plan(
        SyntheticDatasetConfig(name="c", mode="combinations", attributes=("Male", "Eyeglasses"), n=7),
        ATTRIBUTES,
        real,
        chunk_size=16,
    )
    assert combos.groupby(["Male", "Eyeglasses"]).size().tolist() == [7, 7, 7, 7]

    # Attributes not balanced are drawn from the real marginals.
    big = sampling_plan(
        SyntheticDatasetConfig(name="m", mode="per_attribute", attributes=("Smiling",), n=5000),
        ATTRIBUTES,
        real,
        chunk_size=256,
    )
    assert abs(big["Male"].mean() - real_marginals(real, ["Male"])["Male"]) < 0.02
    with pytest.raises(ValueError, match=r"datasets\[x\].attributes: \['Bald'\] are not conditioned"):
        sampling_plan(
            SyntheticDatasetConfig(name="x", mode="combinations", attributes=("Bald",), n=1),
            ATTRIBUTES,
            real,
            chunk_size=16,
        )


def test_edit_plan_flips_one_attribute_and_keeps_identity(inputs) -> None:
    annotations = PreparedFaces(inputs[0]).annotations.set_index("_row")
    sources = annotations[assign_roles(annotations, ATTENDANCE) == "enrol"]
    plan = edit_plan(EDITS, ATTRIBUTES, sources)
    assert len(sources) == ATTENDANCE.roster_size * ATTENDANCE.enrol_per_person
    assert len(plan) == len(sources) * len(ATTRIBUTES)
    for _, row in plan.iterrows():
        source = annotations.loc[row["source_row"]]
        assert row["source_image"] == source["image_id"] and row["identity"] == str(source["identity"])
        changed = [a for a in ATTRIBUTES if row[a] != source[a]]
        assert changed == [row["edited_attribute"]]


def test_a_requested_hair_colour_turns_the_other_hair_colours_off() -> None:
    # A face has one hair colour: blond requested on a row drawn (or photographed) black-haired is asked for
    # without the black hair; attributes of another kind are drawn or kept as before.
    hair = ("Black_Hair", "Blond_Hair", "Male")
    rng = np.random.default_rng(0)
    black = rng.random(400) < 0.5
    real = pd.DataFrame(
        {"Black_Hair": black, "Blond_Hair": ~black & (rng.random(400) < 0.5), "Male": rng.random(400) < 0.5}
    ).astype(int)
    plan = sampling_plan(
        SyntheticDatasetConfig(name="h", mode="per_attribute", attributes=("Blond_Hair",), n=400),
        hair,
        real,
        chunk_size=64,
    )
    blond, not_blond = plan[plan["Blond_Hair"] == 1], plan[plan["Blond_Hair"] == 0]
    assert (blond["Black_Hair"] == 0).all() and 0.4 < not_blond["Black_Hair"].mean() < 0.6
    assert 0.4 < blond["Male"].mean() < 0.6
    real["image_id"], real["identity"] = [f"{i:06d}.jpg" for i in range(400)], np.arange(400) // 4
    edits = edit_plan(SyntheticDatasetConfig(name="e", mode="edit", attributes=("Blond_Hair", "Male")), hair, real)
    flipped_blond = edits[edits["edited_attribute"] == "Blond_Hair"].set_index("source_row")
    assert (flipped_blond.loc[flipped_blond["Blond_Hair"] == 1, "Black_Hair"] == 0).all()
    assert (
        flipped_blond.loc[real.index[real["Blond_Hair"] == 1], "Black_Hair"]
        .eq(real.loc[real["Blond_Hair"] == 1, "Black_Hair"])
        .all()
    )  # blond removed: the rest as it was
    assert edits[edits["edited_attribute"] == "Male"]["Black_Hair"].tolist() == real["Black_Hair"].tolist()


def test_balanced_dataset_matches_the_contract(inputs, tmp_path) -> None:
    report = SyntheticFactory(config(inputs, tmp_path, PER_ATTRIBUTE), ATTENDANCE, inputs[0]).make(PER_ATTRIBUTE)
    folder = tmp_path / "balanced"
    manifest = load_manifest(folder)
    assert list(manifest.columns) == CONTRACT_COLUMNS
    assert pd.read_csv(folder / "manifest.csv", keep_default_na=False).astype(str).equals(manifest.astype(str))
    assert report.images == len(manifest) == 100 and report.balanced and report.max_cell_deviation == 0
    assert manifest["file"].tolist() == [f"images/{i:06d}.png" for i in range(100)]
    for file in manifest["file"]:
        assert Image.open(folder / file).size == (32, 32)
    # Each requested cell within 1% of its target, as the data card states.
    assert (manifest["Eyeglasses"].iloc[:50] == [1] * 25 + [0] * 25).all()
    card = (folder / "datacard.md").read_text()
    assert "every requested cell is within 1% of its target" in card and "| Eyeglasses=1 |       25 |     25 |" in card
    assert report.images and (folder / "grid.png").is_file() and manifest["generator_sha256"].nunique() == 1
    assert not list(tmp_path.glob(".*partial"))
    # Any face can be redrawn from the manifest alone: the rows sharing its seed, in sample_index order.
    rows = manifest[manifest["seed"] == manifest["seed"].iloc[40]].sort_values("sample_index")
    redrawn = FaceModel.load(inputs[1]).sample(
        torch.tensor(rows[list(ATTRIBUTES)].to_numpy()), int(rows["seed"].iloc[0])
    )
    assert all(np.array_equal(redrawn[i], np.asarray(Image.open(folder / f))) for i, f in enumerate(rows["file"]))


def test_same_params_and_checkpoint_give_identical_bytes(inputs, tmp_path) -> None:
    for out in ("a", "b"):
        factory = SyntheticFactory(config(inputs, tmp_path / out, PER_ATTRIBUTE, EDITS), ATTENDANCE, inputs[0])
        factory.make(PER_ATTRIBUTE), factory.make(EDITS)
    for name in ("balanced", "edits"):
        assert files(tmp_path / "a" / name) == files(tmp_path / "b" / name)
    edits = load_manifest(tmp_path / "a" / "edits")
    assert (edits["mode"] == "edit").all() and set(edits["edited_attribute"]) == set(ATTRIBUTES)


def test_edits_are_redrawn_from_the_manifest_with_the_recorded_sampling(inputs, tmp_path) -> None:
    strong = SamplingConfig(edit_strength=3.0)
    SyntheticFactory(config(inputs, tmp_path, EDITS), ATTENDANCE, inputs[0], strong).make(EDITS)
    manifest = load_manifest(tmp_path / "edits").head(12)
    faces = PreparedFaces(inputs[0])
    position = {image_id: i for i, image_id in enumerate(faces.annotations["image_id"])}
    at = [position[image_id] for image_id in manifest["source_image"]]
    sources = np.asarray(faces.images)[at]
    source_attributes = torch.tensor(faces.annotations[list(ATTRIBUTES)].to_numpy(np.float32)[at])
    targets = torch.tensor(manifest[list(ATTRIBUTES)].to_numpy(np.float32))
    # Each edit flips one attribute of its source; the editor was asked for it at 3x.
    assert ((targets != source_attributes).sum(1) == 1).all()
    edited = np.stack([np.asarray(Image.open(tmp_path / "edits" / f)) for f in manifest["file"]])
    model = FaceModel.load(inputs[1], sampling=strong)
    assert np.array_equal(edited, model.edit(sources, targets, source_attributes=source_attributes))
    assert not np.array_equal(
        edited, FaceModel.load(inputs[1], sampling=SamplingConfig(edit_strength=1.0)).edit(sources, targets)
    )
    assert "edit_strength: 3.0" in (tmp_path / "edits" / "datacard.md").read_text()


def test_a_killed_run_leaves_no_dataset_and_a_rerun_finishes_it(inputs, tmp_path, monkeypatch) -> None:
    SyntheticFactory(config(inputs, tmp_path / "clean", PER_ATTRIBUTE), ATTENDANCE, inputs[0]).make(PER_ATTRIBUTE)
    real_encode, written = writer.encode_png, []

    def crash_in_third_chunk(image, path, compression):
        if len(written) == 40:
            raise KeyboardInterrupt("killed")
        written.append(path)
        real_encode(image, path, compression)

    monkeypatch.setattr(writer, "encode_png", crash_in_third_chunk)
    cfg = config(inputs, tmp_path / "killed", PER_ATTRIBUTE)
    with pytest.raises(KeyboardInterrupt):
        SyntheticFactory(cfg, ATTENDANCE, inputs[0]).make(PER_ATTRIBUTE)
    assert not (tmp_path / "killed" / "balanced").exists()
    assert len(list((tmp_path / "killed" / ".balanced.partial" / "chunks").glob("*.parquet"))) == 2

    written.clear()
    monkeypatch.setattr(writer, "encode_png", lambda *a: (written.append(a[1]), real_encode(*a)))
    SyntheticFactory(cfg, ATTENDANCE, inputs[0]).make(PER_ATTRIBUTE)
    assert len(written) == 100 - 32  # the two recorded chunks were not redone
    assert files(tmp_path / "killed" / "balanced") == files(tmp_path / "clean" / "balanced")
    assert not (tmp_path / "killed" / ".balanced.partial").exists()


class BrightnessPredictor:
    """Stand-in classifier: 'has the attribute' when the image is brighter than a threshold."""

    attributes = ("Eyeglasses", "Smiling", "Bald")

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        brightness = images.reshape(len(images), -1).mean(axis=1) / 255
        return np.repeat(brightness[:, None], len(self.attributes), axis=1)


def test_quality_filter_drops_disagreeing_faces_and_reports_them(inputs, tmp_path) -> None:
    spec = PER_ATTRIBUTE.model_copy(update={"filter": QualityFilterConfig(enabled=True)})
    factory = SyntheticFactory(config(inputs, tmp_path, spec), ATTENDANCE, inputs[0])
    unfiltered = SyntheticFactory(config(inputs, tmp_path / "all", PER_ATTRIBUTE), ATTENDANCE, inputs[0])
    unfiltered.make(PER_ATTRIBUTE)
    every = load_manifest(tmp_path / "all" / "balanced")
    images = np.stack([np.asarray(Image.open(tmp_path / "all" / "balanced" / f)) for f in every["file"]])
    threshold = float(np.median(images.reshape(len(images), -1).mean(axis=1) / 255))
    checker = QualityFilter(BrightnessPredictor(), ["Eyeglasses", "Smiling"], threshold)
    expected = checker.accept(images, every)
    assert 0 < expected.sum() < len(every)

    report = factory.make(spec, quality=checker)
    kept = load_manifest(tmp_path / "balanced")
    assert kept["file"].tolist() == every.loc[expected, "file"].tolist()
    assert report.rejected == len(every) - expected.sum() and not report.balanced
    assert f"{report.rejected} of 100 faces dropped" in (tmp_path / "balanced" / "datacard.md").read_text()

    with pytest.raises(ValueError, match=r"does not predict \['Male'\]"):
        QualityFilter(BrightnessPredictor(), ["Male"])
    missing = spec.model_copy(
        update={"filter": QualityFilterConfig(enabled=True, classifier=tmp_path / "models" / "attribute_classifier.pt")}
    )  # not the repo's, if built
    with pytest.raises(FileNotFoundError, match="attribute_classifier.pt.*evaluate_gan"):
        SyntheticFactory(
            config(inputs, tmp_path / "x", missing), ATTENDANCE, inputs[0], load_predictor=AttributeClassifier.load
        ).make(missing)
    with pytest.raises(ValueError, match="filter is enabled, but no classifier loader"):
        SyntheticFactory(config(inputs, tmp_path / "x", spec), ATTENDANCE, inputs[0]).make(spec)


def test_loader_filters_on_attribute_values(inputs, tmp_path) -> None:
    factory = SyntheticFactory(config(inputs, tmp_path, PER_ATTRIBUTE, EDITS), ATTENDANCE, inputs[0])
    factory.make(PER_ATTRIBUTE), factory.make(EDITS)
    manifest = load_manifest(tmp_path / "balanced")
    glasses = SyntheticFaces(
        tmp_path / "balanced", attributes={"Eyeglasses": 1, "Smiling": 0}, transform=lambda im: np.asarray(im)
    )
    assert len(glasses) == ((manifest["Eyeglasses"] == 1) & (manifest["Smiling"] == 0)).sum() > 0
    image, attributes, _ = glasses[0]
    assert image.shape == (32, 32, 3) and attributes[ATTRIBUTES.index("Eyeglasses")] == 1
    assert all(glasses[i][1][1] == 1 and glasses[i][1][2] == 0 for i in range(len(glasses)))

    edits = SyntheticFaces(tmp_path / "edits", columns=["Smiling"])
    people = load_manifest(tmp_path / "edits")["identity"]
    assert len(edits.identity_names) == people.nunique() == ATTENDANCE.roster_size
    assert edits.identity_names[edits[0][2]] == people.iloc[0] and edits[0][1].shape == (1,)
    with pytest.raises(ValueError, match="unknown attribute.*Bald"):
        SyntheticFaces(tmp_path / "balanced", attributes={"Bald": 1})
    with pytest.raises(FileNotFoundError, match="not a finished synthetic data set"):
        load_manifest(tmp_path / "missing")


def test_params_errors_name_the_parameter(tmp_path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("generate:\n  datasets:\n    - {name: a, mode: per_attribute, attributes: [Smiling]}\n")
    with pytest.raises(ParamsError, match=r"generate.datasets.0.*needs n"):
        load_params(params)
    params.write_text("generate:\n  datasets:\n    - {name: a, mode: edit}\n    - {name: a, mode: edit}\n")
    with pytest.raises(ParamsError, match=r"names repeat: \['a'\]"):
        load_params(params)
    defaults = load_params("params.yaml").generate
    assert {d.name: d.mode for d in defaults.datasets} == {
        "enrolment_edits": "edit",
        "balanced_attributes": "per_attribute",
    }


def test_cli_makes_the_named_data_sets(inputs, tmp_path) -> None:
    from typer.testing import CliRunner

    from pipelines.cli import app

    prepared, checkpoint = inputs
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump(
            {
                "attendance": ATTENDANCE.model_dump(mode="json"),
                "prepare": {"out": str(prepared)},
                "generate": {
                    "checkpoint": str(checkpoint),
                    "out": str(tmp_path / "out"),
                    "datasets": [PER_ATTRIBUTE.model_dump(mode="json"), EDITS.model_dump(mode="json")],
                },
            }
        )
    )
    result = CliRunner().invoke(app, ["generate", "--params", str(params), "--only", "edits"])
    assert result.exit_code == 0, result.output
    assert "edits: 24 images (edit; 0 rejected" in result.output
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["edits"]
    result = CliRunner().invoke(app, ["generate", "--params", str(params), "--only", "nope"])
    assert "no data set named ['nope']" in str(result.exception)


def test_quality_filter_loads_the_evaluation_classifier(inputs, tmp_path) -> None:
    """Contract 2 end to end: the classifier `evaluate_gan` saves is the one the filter loads and asks."""
    from facegen.config import NetTraining
    from facegen.metrics.attribute_classifier import train_attribute_classifier

    unfiltered = SyntheticFactory(config(inputs, tmp_path / "all", PER_ATTRIBUTE), ATTENDANCE, inputs[0])
    unfiltered.make(PER_ATTRIBUTE)
    every = load_manifest(tmp_path / "all" / "balanced")
    images = np.stack([np.asarray(Image.open(tmp_path / "all" / "balanced" / f)) for f in every["file"]])
    classifier, _ = train_attribute_classifier(
        images,
        every[["Eyeglasses", "Smiling"]].to_numpy(),
        ["Eyeglasses", "Smiling"],
        NetTraining(width=4, epochs=1, batch_size=32),
    )
    classifier.save(tmp_path / "classifier.pt")
    settings = QualityFilterConfig(enabled=True, classifier=tmp_path / "classifier.pt")
    checker = QualityFilter.load(settings, ["Eyeglasses", "Smiling"], AttributeClassifier.load)
    proba = classifier.predict_proba(images)
    expected = ((proba >= 0.5).astype(int) == every[["Eyeglasses", "Smiling"]].to_numpy()).all(axis=1)
    assert np.array_equal(checker.accept(images, every), expected)
