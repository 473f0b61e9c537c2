"""The prepared GPU check of the celeba64 generator (bench/gpu_celeba64.py) runs end to end on the CPU with tiny
settings: the bundle holds whole people and the identity network, the run trains, judges and reports."""

from __future__ import annotations

import numpy as np
import pandas as pd
import yaml
from PIL import Image

from bench.gpu_celeba64 import IDENTITY_FILE, load_bundle, make_bundle, run
from facegen.config import EvaluateConfig, GanConfig, NetTraining
from recognition.models.backbone import DistilledFacenet, save_backbone

ATTRIBUTES = ("Smiling", "Eyeglasses")


def test_bundle_then_run(shared_faces64, celeba_annotations, tmp_path) -> None:
    study, table = tmp_path / "study", celeba_annotations.set_index("image_id")
    rows, images = [], []
    for person in sorted(shared_faces64.iterdir())[:12]:
        for photo in sorted(person.iterdir())[:5]:
            images.append(np.asarray(Image.open(photo).convert("RGB")))
            rows.append({"image_id": photo.name, "identity": person.name, "split": "train"})
            rows[-1] |= {a: int(table.loc[photo.name, a]) for a in ATTRIBUTES}
    (study / "prepared").mkdir(parents=True)
    np.save(study / "prepared" / "images.npy", np.stack(images))
    pd.DataFrame(rows).to_parquet(study / "prepared" / "annotations.parquet")
    (study / "prepared" / "meta.json").write_text("{}")
    save_backbone(DistilledFacenet(), study / "distilled.pt", {"pretrained": "test"})
    gan = {"attributes": list(ATTRIBUTES), "lambda_identity": 1.0, "identity_network": "distilled.pt"}
    (study / "params.yaml").write_text(yaml.safe_dump({"prepare": {"out": "prepared"}, "gan": gan}))

    bundle = tmp_path / "gpu" / "celeba64.npz"
    report = make_bundle(study, bundle, max_mib=60)
    assert report["faces"] == 60 and report["people"] == 12 and report["mib"] < 60
    faces, attributes, people, names, network = load_bundle(bundle)
    assert faces.shape == (60, 64, 64, 3) and names == list(ATTRIBUTES) and isinstance(network, DistilledFacenet)
    small = make_bundle(study, tmp_path / "small" / "celeba64.npz", max_mib=45.3)  # the fp16 network takes 45.2 MiB
    assert 0 < small["faces"] < 60 and small["faces"] % 5 == 0  # whole people only

    config = GanConfig(
        profile="demo",
        steps=2,
        batch_size=4,
        editor_mask=True,
        lambda_identity=1.0,
        identity_network=bundle.parent / IDENTITY_FILE,
        out=tmp_path / "gan",
    )
    tiny = NetTraining(width=8, epochs=1, holdout_fraction=0.25)
    result = run(bundle, config, tiny, 6, [1.0, 2.0], "cpu", EvaluateConfig(detector=tiny))
    assert result["steps_per_second"] > 0 and result["heldout_people"] == 3
    assert set(result["edits"]) == set(ATTRIBUTES) and set(result["edits"]["Smiling"]) == {"1", "2"}
    assert result["edits"]["Smiling"]["1"]["rows"] == 6 and -1 < result["identity_threshold"] <= 1  # untrained: ~1
    assert set(result["judge_balanced_accuracy"]) == set(ATTRIBUTES)
    detected = result["detector_on_edits"]  # each attribute's edits at the largest strength against real photos
    assert detected["strength"] == 2.0 and all(0 <= detected[a] <= 1 for a in ATTRIBUTES)
    confined = result["confined"]  # the same edits confined to their attribute's band: judged the same way
    assert set(confined["edits"]) == set(ATTRIBUTES) and confined["edits"]["Smiling"]["1"]["rows"] == 6
    assert confined["detector_on_edits"]["strength"] == 2.0 and all(
        0 <= confined["detector_on_edits"][a] <= 1 for a in ATTRIBUTES
    )

    feature = config.model_copy(update={"lambda_feature": 1.0, "out": tmp_path / "gan_feature"})
    assert run(bundle, feature, tiny, 6, [1.0], "cpu", EvaluateConfig(detector=tiny))["gan"]["lambda_feature"] == 1.0
