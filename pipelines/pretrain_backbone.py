"""Stage `pretrain_backbone`: the embedding network every later recognition stage uses, `models/backbone.pt`.

`recognition.pretrained: none` trains InceptionResnetV1 here on the background people (never the roster,
the visitors or the calibration people); `vggface2` / `casia-webface` / a path only record those weights in
the same file, so later stages always read one project checkpoint.
Run by `dvc repro pretrain_backbone`, or standalone: `python -m pipelines.pretrain_backbone [--params FILE]`.
"""

from __future__ import annotations

import time
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from facegen.config import Params, load_params
from facegen.data.prepared import PreparedFaces
from facegen.io import write_json
from facegen.locks import output_lock
from facegen.weights import load_checkpoint
from facegen.paths import BACKBONE, BACKBONE_TRAINING, PRETRAIN_CURVE, PRETRAIN_METRICS
from recognition.models.backbone import TEACHER, load_backbone, save_backbone
from recognition.models.pretrain import BackbonePretrainer, PretrainSettings, identity_labels
from recognition.sets import attendance_sets
from pipelines import run_from_command_line


@task
def pretrain(params: Params) -> dict:
    rec = params.recognition
    background = attendance_sets(
        params.prepare.out,
        params.attendance,
        rec.calibration_people,
        names=("pretrain",),
        pretrain_people=rec.pretrain_people,
    )
    faces = background["pretrain"]
    labels = identity_labels(faces.annotations["identity"].to_numpy())
    settings = PretrainSettings(rec.input_size, rec.epochs, rec.batch_size, rec.lr, rec.seed)
    trainer = BackbonePretrainer(settings, faces.images, labels, BACKBONE_TRAINING)
    if trainer.resume():
        get_run_logger().info("resuming backbone pretraining after epoch %d", trainer.epoch)
    start = time.perf_counter()
    history = trainer.run()
    trainer.write_metrics(PRETRAIN_CURVE)
    meta = {"pretrained": "none", "identities": int(labels.max()) + 1, "images": len(labels)}
    trainer.save(BACKBONE, {**meta, "align": PreparedFaces(params.prepare.out).align})
    return {
        "pretrained": "none",
        "identities": int(labels.max()) + 1,
        "images": len(labels),
        "epochs": len(history),
        "final_loss": history[-1]["loss"],
        "final_accuracy": history[-1]["accuracy"],
        "seconds_per_epoch": round(sum(h["seconds"] for h in history) / len(history), 1),
        "seconds_this_run": round(time.perf_counter() - start, 1),
    }


@task
def record_pretrained(pretrained: str) -> dict:
    """Store externally pretrained weights (facenet's or a file) as the project's backbone, or a file naming the
    dlib teacher (`dlib`: later stages embed with it, recognition.models.embeddings.load_embedder); no training."""
    if pretrained == TEACHER:
        from recognition.models.teacher import fingerprint

        save_backbone(None, BACKBONE, {"pretrained": TEACHER, "teacher": fingerprint()})
    else:  # a file keeps the alignment it was trained on (recognition.models.embeddings.check_alignment)
        meta = (
            load_checkpoint(Path(pretrained), "backbone", ("backbone",))["meta"] if Path(pretrained).is_file() else {}
        )
        kept = {key: meta[key] for key in ("align",) if key in meta}
        save_backbone(load_backbone(pretrained), BACKBONE, {"pretrained": pretrained, **kept})
    BackbonePretrainer.write_empty_metrics(PRETRAIN_CURVE)
    return {"pretrained": pretrained}


@flow(name="pretrain_backbone", log_prints=True)
def pretrain_backbone_flow(params_file: str = "params.yaml") -> dict:
    params = load_params(params_file)
    pretrained = params.recognition.pretrained
    with output_lock(BACKBONE):  # one run at a time writes the backbone and its training folder
        report = pretrain(params) if pretrained == "none" else record_pretrained(pretrained)
    write_json(PRETRAIN_METRICS, report)
    rows = "\n".join(f"| {k} | {v} |" for k, v in report.items())
    create_markdown_artifact(
        key="pretrain-backbone",
        markdown=f"# Backbone `{BACKBONE}`\n\n| what | value |\n|---|---|\n{rows}\n",
        description="Recognition backbone",
    )
    return report


if __name__ == "__main__":
    run_from_command_line(pretrain_backbone_flow, __doc__)
