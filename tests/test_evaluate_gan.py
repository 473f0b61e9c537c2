"""The evaluate_gan stage end to end on a tiny real data set and a tiny generator with an editor: the CLI
writes the classifier, metrics/gan.json and the plots, and falls back to classifier features for identity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

from pipelines.cli import app
from facegen.gan.training_loop import GanTrainer
from facegen.metrics.attribute_classifier import AttributeClassifier
from pipelines.evaluate_gan import markdown
from tests.support.synthetic import tiny_gan

ATTRIBUTES = ("Male", "Smiling")


def _prepared(shared_faces64: Path, annotations, root: Path) -> np.ndarray:
    """A prepare-layout cache of 240 real faces of 30 people at 32 x 32."""
    rows, images = [], []
    table = annotations.set_index("image_id")
    for person in sorted(shared_faces64.iterdir())[:30]:
        for photo in sorted(person.iterdir())[:8]:
            images.append(np.asarray(Image.open(photo).convert("RGB").resize((32, 32), Image.BILINEAR)))
            rows.append(
                {
                    "image_id": photo.name,
                    "identity": person.name,
                    "split": "train",
                    **{a: int(table.loc[photo.name, a]) for a in ATTRIBUTES},
                }
            )
    root.mkdir(parents=True)
    np.save(root / "images.npy", np.stack(images))
    pd.DataFrame(rows).to_parquet(root / "annotations.parquet")
    (root / "meta.json").write_text("{}")
    return np.stack(images)


def test_evaluate_command_writes_metrics_plots_and_classifier(
    shared_faces64, celeba_annotations, tmp_path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    images = _prepared(shared_faces64, celeba_annotations, tmp_path / "prepared")
    gan = tiny_gan(attributes=ATTRIBUTES, out=tmp_path / "gan")
    GanTrainer(gan, torch.from_numpy(images), torch.randint(0, 2, (len(images), 2)).float(), gan.out).run()
    tiny = {"width": 8, "epochs": 2, "batch_size": 32, "holdout_fraction": 0.25}
    params = {
        "prepare": {"out": "prepared"},
        "gan": gan.model_dump(mode="json"),
        "evaluate": {
            "classifier": tiny,
            "detector": tiny,
            "samples": 120,
            "control_samples": 20,
            "edits": 20,
            "kid_subsets": 5,
            "kid_subset_size": 50,
            "classifier_out": "models/classifier.pt",
        },
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))

    result = CliRunner().invoke(app, ["evaluate", "--params", "params.yaml"])
    assert result.exit_code == 0, result.output
    assert "metrics/gan.json" in result.output

    metrics = json.loads((tmp_path / "metrics" / "gan.json").read_text())
    assert set(metrics["classifier"]["heldout_accuracy"]) == set(ATTRIBUTES)
    assert set(metrics["control_sampled"]) == set(metrics["control_edited"]) == {*ATTRIBUTES, "mean"}
    assert metrics["identity"]["measured"] == 1 and "no backbone" in metrics["identity"]["embedding"]
    assert 0 <= metrics["identity"]["verified_share"] <= 1
    # Two updates of a generator are nowhere near real faces, and every metric says so.
    assert metrics["detector"]["accuracy"] > 0.9 and metrics["detector"]["p_value"] < 1e-6
    assert metrics["fid"] > 0 and metrics["coverage"] < 0.5  # FID's scale is tested in test_evaluation_metrics
    assert (
        metrics["latent_diversity"]["attribute_rows"] == 4
    )  # every Male/Smiling row; its scale: test_evaluation_metrics
    assert AttributeClassifier.load(tmp_path / "models" / "classifier.pt").attributes == ATTRIBUTES
    control = pd.read_csv(tmp_path / "plots" / "evaluate" / "control_accuracy.csv")
    assert list(control["attribute"]) == list(ATTRIBUTES) and control["edited"].notna().all()
    assert len(pd.read_csv(tmp_path / "plots" / "evaluate" / "classifier_training.csv")) == 2
    assert (tmp_path / "plots" / "evaluate" / "control_samples.png").stat().st_size > 0
    assert "attribute control, edited faces" in markdown(metrics)
    # Each attribute's control beside the judge's balanced accuracy; plain sampling is what was configured here.
    assert "| Smiling | " in markdown(metrics) and "control_sampled_plain" not in metrics
    assert metrics["detector"]["encoding"] == "jpeg"  # real and generated faces both went through JPEG
    # The sampling settings the numbers were made with (params.yaml has none here: the plain defaults).
    assert {k: metrics["generator"][k] for k in ("candidates", "edit_strength", "refine", "refine_strength")} == {
        "candidates": 1,
        "edit_strength": 1.0,
        "refine": False,
        "refine_strength": 1.0,
    }
    assert "| 1 / 1.0 / False (1.0) |" in markdown(metrics)


def test_identity_is_judged_by_the_network_handed_in() -> None:
    """The stage hands in the recognition backbone (recognition.models.backbone.identity_network) when one is trained;
    without one, the classifier's features judge identity, and the metrics say so."""
    from facegen.metrics.evaluate import identity_embedding
    from facegen.metrics.identity import IdentityNetwork

    classifier = AttributeClassifier(ATTRIBUTES, 32, width=4)
    faces = np.zeros((3, 32, 32, 3), np.uint8)
    loaded = []
    judge = IdentityNetwork("backbone b.pt", lambda: loaded.append(1) or (lambda x: np.full((len(x), 4), 96.0)))
    embed, name = identity_embedding(judge, classifier)
    assert name == "backbone b.pt" and embed(faces).tolist() == [[96.0] * 4] * 3 and loaded == [1]

    embed, name = identity_embedding(None, classifier)
    assert "no backbone" in name and embed(faces).shape == (3, classifier.net.num_features)
