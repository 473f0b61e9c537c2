"""How controllable is a trained generator? A classifier trained on the real faces checks, per conditioned
attribute, the share of sampled faces and of edited faces that show the requested value.

    python -m bench.gan_control [--checkpoint models/gan/checkpoint.pt] [--prepared data/prepared] [-n 100]

The classifier is a per-attribute logistic regression on 16 x 16 colour thumbnails of the real `train` split
(scikit-learn, balanced class weights), a deliberately small stand-in for the evaluation stage's
`AttributeClassifier`; its balanced accuracy on the real `test` split is printed beside the results.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score

from facegen.data.prepared import PreparedFaces
from facegen.gan.inference import FaceModel


def thumbnails(images: np.ndarray, size: int = 16) -> np.ndarray:
    return np.stack([np.asarray(Image.fromarray(i).resize((size, size), Image.Resampling.BOX)) for i in images]
                    ).reshape(len(images), -1) / 255.0


def control(checkpoint: str, prepared: str, n: int, seed: int = 0) -> dict[str, dict[str, float]]:
    model = FaceModel.load(checkpoint)
    names = list(model.attributes)
    train, test = (PreparedFaces(prepared, attributes=names, split=s) for s in ("train", "test"))
    rng = np.random.default_rng(seed)
    x_train, x_test = thumbnails(train.images), thumbnails(test.images)
    real = train.annotations[names].to_numpy().astype(np.float32)
    sources = rng.choice(len(test.images), size=min(n, len(test.images)), replace=False)
    source_images, source_attributes = test.images[sources], test.annotations[names].to_numpy()[sources].astype(np.float32)
    results = {}
    for a, name in enumerate(names):
        classifier = LogisticRegression(max_iter=2000, class_weight="balanced", C=0.1).fit(x_train, real[:, a])
        real_accuracy = balanced_accuracy_score(test.annotations[name], classifier.predict(x_test))
        # Samples: half asked for the attribute, half for its absence, the other attributes as in real faces.
        wanted = real[rng.choice(len(real), size=n)]
        wanted[:, a] = np.arange(n) % 2
        samples = model.sample(torch.from_numpy(wanted), seed=seed + a)
        sample_share = float((classifier.predict(thumbnails(samples)) == wanted[:, a]).mean())
        # Edits: real test faces with this attribute flipped, the others as labelled.
        targets = source_attributes.copy()
        targets[:, a] = 1 - targets[:, a]
        edits = model.edit(source_images, torch.from_numpy(targets))
        edit_share = float((classifier.predict(thumbnails(edits)) == targets[:, a]).mean())
        results[name] = {"classifier_real_balanced_accuracy": round(real_accuracy, 3),
                         "samples_with_requested_value": round(sample_share, 3),
                         "edits_with_requested_value": round(edit_share, 3)}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="models/gan/checkpoint.pt")
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("-n", type=int, default=100, help="samples and edits per attribute")
    args = parser.parse_args()
    print(json.dumps(control(args.checkpoint, args.prepared, args.n), indent=2))


if __name__ == "__main__":
    main()
