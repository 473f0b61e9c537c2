"""The face recognizer attendance embeds with, chosen by ``recognition.pretrained``: the distilled facenet file
(the default, studies/faces64's stage distill_backbone), any project backbone file, ``none`` (this project's
models/backbone.pt, stage pretrain_backbone) or ``dlib`` (the pretrained teacher: nothing to build)."""

from __future__ import annotations

from pathlib import Path

from facegen.config import RecognitionConfig
from facegen.paths import ATTENDANCE_RECOGNIZER, BACKBONE
from recognition.models.backbone import FACENET_WEIGHTS, TEACHER, BackboneUnavailable, load_backbone
from recognition.models.embeddings import Embedder, TorchEmbedder, load_embedder

DLIB_HINT = "or use the dlib teacher, which needs nothing built: --set recognition.pretrained=dlib"


def load_recognizer(config: RecognitionConfig) -> Embedder:
    """The embedder of ``config.pretrained``, at the input size a backbone file was trained at (else
    ``config.input_size``); a missing file is an error that says how to build it."""
    pretrained = config.pretrained
    if pretrained == TEACHER:
        from recognition.models.teacher import DlibTeacher

        return DlibTeacher(workers=config.teacher.workers)
    if pretrained in FACENET_WEIGHTS:  # facenet-pytorch's own checkpoints (downloaded once into the torch cache)
        return TorchEmbedder(load_backbone(pretrained), pretrained, config.input_size, config.embed_batch_size)
    path = BACKBONE if pretrained == "none" else Path(pretrained)
    if not path.is_file():
        raise BackboneUnavailable(f"recognition.pretrained={pretrained}: no model file {path}; {_build_hint(path)}")
    return load_embedder(path, config.input_size, config.embed_batch_size, config.teacher.workers)


def _build_hint(path: Path) -> str:
    if path == BACKBONE:
        return f"train it with `dvc repro pretrain_backbone` (recognition.pretrained: none), {DLIB_HINT}"
    if path.name == ATTENDANCE_RECOGNIZER.name:
        return (
            "build the distilled facenet with `cd studies/faces64 && dvc repro distill_backbone` "
            f"(its CPU time: docs/BENCHMARKS.md), {DLIB_HINT}"
        )
    return f"give the path of a backbone file (recognition.pretrained), {DLIB_HINT}"
