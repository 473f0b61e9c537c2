"""The study report: reads every stage's outputs, and says which are missing instead of breaking."""

from __future__ import annotations

import json

import numpy as np
import torch
from PIL import Image

from facegen.config import load_params
from facegen.gan.training_loop import GanTrainer
from facegen.report.study import write_study_report


def _params(tmp_path):
    return load_params(
        "params.yaml",
        {
            "gan.out": str(tmp_path / "models" / "gan"),
            "gan.base_channels": 8,
            "gan.editor_channels": 8,
            "gan.batch_size": 4,
            "gan.steps": 2,
            "gan.sample_every": 1,
            "gan.checkpoint_every": 2,
            "generate.out": str(tmp_path / "data" / "synthetic"),
        },
    )


def test_empty_study_names_what_is_missing(tmp_path, monkeypatch) -> None:
    params = _params(tmp_path)
    monkeypatch.chdir(tmp_path)
    html = write_study_report(params, tmp_path / "reports" / "index.html").read_text()
    for missing in (
        "grid_*.png (stage train_gan)",
        "metrics/gan.json (stage evaluate_gan)",
        "enrolment_edits/datacard.md (stage generate)",
        "metrics/recognition.md (stage compare)",
    ):
        assert missing in html


def test_full_study_shows_every_section(tmp_path, monkeypatch) -> None:
    params = _params(tmp_path)
    attributes = list(params.gan.attributes)
    GanTrainer(
        params.gan,
        torch.randint(0, 256, (8, 32, 32, 3), dtype=torch.uint8),
        torch.randint(0, 2, (8, len(attributes))).float(),
        params.gan.out,
    ).run()
    monkeypatch.chdir(tmp_path)
    per_attribute = {a: 0.9 for a in attributes}
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "gan.json").write_text(
        json.dumps(
            {
                "classifier": {"heldout_accuracy": per_attribute},
                "control_sampled": {**per_attribute, "mean": 0.9},
                "control_edited": {**per_attribute, "mean": 0.9},
                "fid": 12.5,
                "kid_mean": 0.01,
                "precision": 0.8,
                "recall": 0.7,
                "density": 0.9,
                "coverage": 0.8,
                "detector": {"accuracy": 0.61, "p_value": 0.003},
                "identity": {"cosine_mean": 0.83, "verified_share": 0.77},
                "generator": {"loss": "hinge", "candidates": 4, "edit_strength": 2.5, "refine": True},
            }
        )
    )
    for dataset in params.generate.datasets:
        folder = params.generate.out / dataset.name
        folder.mkdir(parents=True)
        (folder / "datacard.md").write_text(
            f"# {dataset.name}\n\n| cell | count |\n|---|---|\n| Eyeglasses=1 | 300 |\n"
        )
        Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(folder / "grid.png")
    (tmp_path / "metrics" / "recognition.md").write_text(
        "# table\n\n| metric | baseline | gan |\n|---|---|---|\n| top-1 accuracy | 0.70 | 0.74 |\n"
    )
    (tmp_path / "plots").mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "plots" / "recognition.png")

    page = write_study_report(params, tmp_path / "reports" / "index.html")
    html = page.read_text()
    assert "Not available yet" not in html
    # Grid, edit strip, training curves, two dataset grids and the recognition plot, all embedded.
    assert html.count('src="data:image/png;base64,') == 6
    assert (tmp_path / "reports" / "assets" / "gan_training.png").is_file()
    assert "<td>12.5</td>" in html and "<td>0.77</td>" in html and "<td>0.74</td>" in html
    assert "sampling: edit strength</td>" in html and "<td>2.5</td>" in html
    assert "sampling: samples refined by the editor</td>" in html and "<td>True</td>" in html
    assert "Eyeglasses=1" in html and "enrolment_edits" in html


def test_embedded_markdown_fits_inside_a_section() -> None:
    from facegen.report.study import embedded_markdown

    card = "# balanced\n\n![sample grid](grid.png)\n\n## Balance\n\n| cell | n |\n|---|---|\n| a | 1 |\n"
    assert embedded_markdown(card) == "\n\n#### Balance\n\n| cell | n |\n|---|---|\n| a | 1 |"


def test_faces64_page_shows_both_questions_and_names_what_is_missing(tmp_path, monkeypatch) -> None:
    params = _params(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "backbones.md").write_text("| recognizer | top-1 |\n|---|---|\n| dlib teacher | 0.903 |\n")
    (tmp_path / "plots").mkdir()
    Image.new("RGB", (64, 32), "red").save(tmp_path / "plots" / "augmentation.png")
    html = write_study_report(params, tmp_path / "reports" / "index.html", study="faces64").read_text()
    assert "Is the recognizer worth measuring with?" in html and "dlib teacher" in html
    assert "Can eyeglasses at enrolment help it" in html
    assert "metrics/augmentation.md" in html  # named as missing, the page still written
    assert "data:image/png;base64" in html  # the forest plot, embedded
    assert "stage train_gan" not in html  # none of the demo study's sections
