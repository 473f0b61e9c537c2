"""End to end on raw photos: a folder of people photographed in a room (faces pasted into scenes) goes through
MTCNN in `prepare`, then pretrain_backbone, train_recognizer for every condition, and compare."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from facegen.config import load_params
from recognition.sets import attendance_sets
from tests.support.edits import make_edits_dataset

pytestmark = pytest.mark.slow


def _raw_photos(shared_faces64: Path, root: Path, people: int = 9, photos: int = 5) -> Path:
    """people/<name>/<photo>.jpg scenes with one face each, plus made-up Eyeglasses/Smiling labels (CSV)."""
    rng = np.random.default_rng(0)
    rows = []
    for person in sorted(shared_faces64.iterdir())[:people]:
        (root / person.name).mkdir(parents=True)
        for k, photo in enumerate(sorted(person.iterdir())[:photos]):
            scene = Image.new("RGB", (400, 300), tuple(int(c) for c in rng.integers(60, 200, 3)))
            scene.paste(
                Image.open(photo).convert("RGB").resize((160, 160), Image.Resampling.BICUBIC),
                (int(rng.integers(20, 220)), int(rng.integers(20, 120))),  # the whole face inside the photo
            )
            scene.save(root / person.name / photo.name, quality=95)
            rows.append({"image": f"{person.name}/{photo.name}", "Eyeglasses": int(k >= 3), "Smiling": int(k == 4)})
    pd.DataFrame(rows).to_csv(root.parent / "attributes.csv", index=False)
    return root


def test_attendance_experiment_runs_on_raw_photos(shared_faces64: Path, tmp_path: Path, monkeypatch) -> None:
    from pipelines.compare import compare_flow
    from pipelines.prepare import prepare_flow
    from pipelines.pretrain_backbone import pretrain_backbone_flow
    from pipelines.train_recognizer import train_recognizer_flow

    raw = _raw_photos(shared_faces64, tmp_path / "photos")
    params = {
        "data": {
            "source": "folder",
            "image_size": 64,
            "folder": {"root": str(raw), "attributes_csv": str(tmp_path / "attributes.csv"), "detect_faces": True},
        },
        "prepare": {"workers": 0},
        "attendance": {"roster_size": 3, "enrol_per_person": 2, "min_checkins": 2, "visitors": 2},
        "recognition": {
            "pretrained": "none",  # pretrained here on the background people (the default is the distilled facenet)
            "epochs": 1,
            "batch_size": 8,
            "calibration_people": 2,
            "seeds": [0, 1, 2],
            "classic_copies": 1,
            "gan_copies": 2,
            "bootstrap_samples": 50,
            "embed_batch_size": 32,
        },
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)

    assert prepare_flow().images_written == 45  # MTCNN found every face
    loaded = load_params()
    enrol = attendance_sets(loaded.prepare.out, loaded.attendance, 2, names=("enrol",))["enrol"]
    assert enrol.annotations[["Eyeglasses", "Smiling"]].sum().sum() == 0  # the attribute gap: enrolled without
    make_edits_dataset(Path("data/synthetic/enrolment_edits"), enrol.annotations, enrol.images)

    backbone = pretrain_backbone_flow()
    assert backbone["identities"] == 2 and backbone["epochs"] == 1  # 9 - 3 roster - 2 visitors - 2 calibration
    summaries = {c: train_recognizer_flow(c) for c in ("baseline", "classic", "gan", "both")}
    assert summaries["baseline"]["augmented_per_seed"] == 0
    assert summaries["classic"]["augmented_per_seed"] == 6 and summaries["gan"]["augmented_per_seed"] == 12
    assert summaries["both"]["augmented_per_seed"] == 18
    assert summaries["baseline"]["checkins"] == 9 and summaries["baseline"]["visitor_photos"] == 10
    assert summaries["gan"]["embedding_cache"]["hits"] >= 4  # enrol, calibration, check-ins, visitors reused
    assert train_recognizer_flow("baseline")["mean"] == summaries["baseline"]["mean"]  # deterministic

    compare_flow()
    table = json.loads(Path("metrics/recognition.json").read_text())
    assert set(table) == {"baseline", "classic", "gan", "both"}
    for condition, metrics in table.items():
        for name in ("top1", "macro_f1", "tar_at_far", "top1_with_Eyeglasses", "top1_without_Eyeglasses"):
            m = metrics[name]
            assert 0 <= m["ci_low"] <= m["mean"] + 1e-9 and m["mean"] <= m["ci_high"] + 1e-9 <= 1 + 1e-9, (
                condition,
                name,
            )
        assert metrics["top1"]["mean"] == pytest.approx(summaries[condition]["mean"]["top1"])
    assert "| top-1 accuracy |" in Path("metrics/recognition.md").read_text()
    assert Path("plots/recognition.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
