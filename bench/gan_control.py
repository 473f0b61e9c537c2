"""How controllable is a trained generator? The evaluation's own measurement (facegen.metrics), without the
FID/precision/detector parts of `evaluate_gan`, so a training run can be judged in about a minute.

    python -m bench.gan_control [--params params.yaml] [--classifier models/attribute_classifier.pt]

The attribute classifier is the one `evaluate_gan` trains on the real prepared faces (identities held out):
loaded from ``--classifier`` when given and present, else trained with the ``evaluate.classifier`` params.
Control is :func:`facegen.metrics.evaluate.control` (the shares that `metrics/gan.json` reports as
``control_sampled`` / ``control_edited``), with the same sample sizes and seed; `evaluate_gan` draws its
requests after its FID samples, so the faces differ and the shares by sampling noise (about +-0.05 at 100).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from facegen.config import load_params
from facegen.data.prepared import PreparedFaces
from facegen.gan.inference import FaceModel
from facegen.paths import GAN_CHECKPOINT_NAME
from facegen.metrics.attribute_classifier import AttributeClassifier, train_attribute_classifier
from facegen.metrics.convnet import holdout_split
from facegen.metrics.evaluate import control


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--classifier", type=Path, default=None, help="a saved attribute classifier to reuse")
    args = parser.parse_args()
    params = load_params(args.params)
    e = params.evaluate
    model = FaceModel.load(params.gan.out / GAN_CHECKPOINT_NAME, sampling=params.sampling)
    attributes = list(model.attributes)
    faces = PreparedFaces(params.prepare.out, attributes=attributes)
    images, rows = np.asarray(faces.images), faces.annotations[attributes].to_numpy(np.float32)
    identities = faces.annotations["identity"].to_numpy()
    if args.classifier is not None and args.classifier.is_file():
        classifier = AttributeClassifier.load(args.classifier)
    else:
        classifier, _ = train_attribute_classifier(images, rows, attributes, e.classifier, identities)
    _, held_out = holdout_split(len(images), e.classifier.holdout_fraction, e.classifier.seed, identities)
    sampled, edited, _ = control(model, classifier, images, rows, held_out, e, np.random.default_rng(e.seed))
    print(
        json.dumps(
            {
                "classifier_heldout_balanced_accuracy": classifier.report["heldout_balanced_accuracy"],
                "control_sampled": sampled.accuracy,
                "control_edited": edited.accuracy if edited is not None else None,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
