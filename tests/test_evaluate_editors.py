"""Stage evaluate_editors end to end on real faces and two tiny generators (one with the masked editor): the
attribute judge, the dlib teacher and Fisherfaces judge every edit and both references (the photo itself, its
reconstruction), and every number in metrics/gan.json is the one its per-face outcomes give."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from facegen.config import GanConfig
from facegen.gan.training_loop import GanTrainer
from pipelines import stage_settings
from pipelines.evaluate_editors import TARGET_FLIPPED, TARGET_VERIFIED, evaluate_editors_flow

pytestmark = pytest.mark.slow
ATTRIBUTES = ("Smiling", "Eyeglasses")
STRENGTHS = (1.0, 2.0)


def _prepared(shared_faces64: Path, annotations, root: Path) -> tuple[np.ndarray, np.ndarray]:
    """A prepare-layout cache of 120 real 64 px faces of 24 people, and their attributes."""
    rows, images = [], []
    table = annotations.set_index("image_id")
    for person in sorted(shared_faces64.iterdir())[:24]:
        for photo in sorted(person.iterdir())[:5]:
            images.append(np.asarray(Image.open(photo).convert("RGB")))
            rows.append(
                {"image_id": photo.name, "identity": person.name, "split": "train"}
                | {a: int(table.loc[photo.name, a]) for a in ATTRIBUTES}
            )
    root.mkdir(parents=True)
    np.save(root / "images.npy", np.stack(images))
    frame = pd.DataFrame(rows)
    frame.to_parquet(root / "annotations.parquet")
    (root / "meta.json").write_text("{}")
    return np.stack(images), frame[list(ATTRIBUTES)].to_numpy(np.float32)


def test_both_editors_are_judged_and_the_summary_is_what_the_outcomes_say(
    shared_faces64, celeba_annotations, tmp_path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    images, rows = _prepared(shared_faces64, celeba_annotations, tmp_path / "prepared")
    tiny = {"base_channels": 8, "z_dim": 8, "editor_channels": 8, "editor_res_blocks": 1, "batch_size": 4}
    configs = {
        "gan_baseline": GanConfig(attributes=ATTRIBUTES, steps=2, out=tmp_path / "baseline", **tiny),
        "gan": GanConfig(attributes=ATTRIBUTES, steps=2, editor_mask=True, out=tmp_path / "masked", **tiny),
    }
    for config in configs.values():
        GanTrainer(config, torch.from_numpy(images), torch.tensor(rows), config.out).run()
    net = {"width": 8, "epochs": 1, "batch_size": 32, "holdout_fraction": 0.25}
    params = {
        "prepare": {"out": "prepared"},
        **{name: c.model_dump(mode="json") for name, c in configs.items()},
        "evaluate": {
            "classifier": net,
            "detector": net,
            "samples": 60,
            "control_samples": 8,
            "edits": 12,
            "kid_subsets": 3,
            "kid_subset_size": 20,
            "classifier_out": "models/judge.pt",
        },
        "editing": {"strengths": list(STRENGTHS), "strength": 2.0, "candidates": 2, "confined": ["gan"]},
        "recognition": {"teacher": {"workers": 1, "embeddings": "data/teacher"}},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with stage_settings():
        metrics = evaluate_editors_flow("params.yaml")

    assert metrics == json.loads(Path("metrics/gan.json").read_text())
    outcomes = pd.read_parquet("data/edit_outcomes.parquet")
    # three judged editors (the masked one also confined): the photo, its reconstruction, each strength
    assert len(outcomes) == 3 * len(ATTRIBUTES) * (2 + len(STRENGTHS)) * 12
    # The judge's held-out people are the edited photos' people: never in the judge's training.
    assert metrics["edited_photos"] == 12 and metrics["judge"]["heldout_people"] == 6
    teacher = metrics["identity_judges"]["teacher"]
    assert -1 < teacher["threshold"] < 1 and teacher["real_same_person_pairs"] > 0
    assert set(metrics["identity_judges"]) == {"teacher", "fisherfaces"}
    for editor, name in (("baseline", "gan_baseline"), ("identity", "gan")):
        result = metrics["editors"][editor]
        assert result["editor_mask"] == configs[name].editor_mask
        for attribute in ATTRIBUTES:
            for strength in STRENGTHS:
                mine = outcomes[
                    (outcomes["editor"] == editor)
                    & (outcomes["kind"] == "edit")
                    & (outcomes["attribute"] == attribute)
                    & (outcomes["strength"] == strength)
                ]
                summary = result["edits"]["edit"][attribute][f"{strength:g}"]
                assert summary["flipped"] == round(mine["flipped"].mean(), 4)
                assert summary["verified_teacher"] == round(mine["verified_teacher"].mean(), 4)
                verified = np.nan_to_num(mine["similarity_teacher"], nan=-1) >= teacher["threshold"]
                assert (mine["verified_teacher"] == verified).all()
            assert metrics["attributes"][attribute][editor]["edit"] == result["edits"]["edit"][attribute]["2"]
            photo = outcomes[(outcomes["editor"] == editor) & (outcomes["kind"] == "noop")]
            found = photo["similarity_teacher"].notna()
            assert (
                np.allclose(photo.loc[found, "similarity_teacher"], 1.0) and photo.loc[found, "verified_teacher"].all()
            )
        # FID/KID in the teacher's space from every sample it found a face in, the detector on JPEGs of both.
        space = result["teacher_space"]
        assert space["real"] + space["real_without_face"] == space["generated"] + space["generated_without_face"] == 60
        assert (space["fid"] is None) == (space["generated"] < 2)  # two steps of training: faces dlib may not find
        assert result["detector"]["encoding"] == "jpeg" and result["detector"]["heldout_images"] > 0
        assert set(result["detector_on_edits"]["Smiling"]) == {"face", "eyes", "mouth"}
        assert set(result["sampled_plain"]) == set(result["sampled_discriminator_chosen"]) == set(ATTRIBUTES)
        for attribute, met in metrics["targets"][editor].items():
            r = result["edits"]["edit"][attribute]["2"]
            others = [r["other_teacher"], r["other_fisherfaces"]]
            expected = r["flipped"] >= TARGET_FLIPPED and all(v is not None and v >= TARGET_VERIFIED for v in others)
            assert met["met"] == expected
    # The paired difference is the mean of the per-photo differences (flipped, and verified by other photos).
    edits = outcomes[outcomes["kind"] == "edit"]
    wide = edits.assign(success=edits["flipped"] & (edits["other_teacher"] == 1)).pivot_table(
        index=["attribute", "strength", "source"], columns="editor", values="success"
    )
    difference = (wide["identity"] - wide["baseline"]).groupby(level=["attribute", "strength"]).mean()
    for (attribute, strength), value in difference.items():
        effect = metrics["identity_minus_baseline"][attribute][f"{strength:g}"]
        assert effect["difference"] == pytest.approx(value, abs=1e-4) and effect["low"] <= effect["high"]
    assert (
        metrics["attributes"]["Smiling"]["judge_balanced_accuracy"]
        == (metrics["judge"]["heldout_balanced_accuracy"]["Smiling"])
    )
    # Confined, the masked editor changes nothing when asked for nothing (its reconstruction is the photo), edits
    # only the attribute's band, and is compared with itself unconfined; its samples are its editor's.
    confined, unconfined = metrics["editors"]["identity_confined"], metrics["editors"]["identity"]
    assert confined["confined_from"] == "identity" and unconfined["confined_from"] is None
    assert confined["memorisation"] == unconfined["memorisation"] and confined["edits"] != unconfined["edits"]
    mine = outcomes[outcomes["editor"] == "identity_confined"].set_index(["kind", "attribute", "source"])
    photo, rebuilt = mine.loc["noop"], mine.loc["reconstruction"]
    assert rebuilt["similarity_teacher"].equals(photo["similarity_teacher"]) and rebuilt["flipped"].equals(
        photo["flipped"]
    )
    assert set(metrics["identity_confined_minus_identity"]) == set(ATTRIBUTES)
    assert (
        "identity_confined" in metrics["targets"]
        and "| identity_confined | as identity |" in Path("metrics/gan.md").read_text()
    )
    grid = Image.open("plots/edits.png")
    columns = 1 + 2 * 3 * len(STRENGTHS)  # the photo, then Eyeglasses and Smiling by each editor at each strength
    assert grid.size[0] == columns * 64 + (columns + 1) * 2
    assert "| Smiling |" in Path("metrics/gan.md").read_text()
    for plot in ("plots/identity_curves.png", "plots/nearest_training_faces.png", "data/rating_set/index.html"):
        assert Path(plot).stat().st_size > 0
