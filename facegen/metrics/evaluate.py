"""The whole generator evaluation of stage `evaluate_gan`: everything measured here, written atomically.

Outputs: the attribute classifier (``evaluate.classifier_out``), ``metrics/gan.json`` and, under
``plots/evaluate/``, the per-attribute control accuracy, the classifier's training curve and a grid of
controlled samples (rows: each attribute requested on / off in turn).
"""

from __future__ import annotations

import csv
import logging
import time
from pathlib import Path

import numpy as np
import torch
from torchvision.utils import save_image

from facegen.config import EvaluateConfig, Params, SamplingConfig
from facegen.data.prepared import PreparedFaces
from facegen.gan.inference import FaceModel, to_tensor
from facegen.io import atomic_file, write_json
from facegen.metrics.attribute_classifier import AttributeClassifier, train_attribute_classifier
from facegen.metrics.control import ControlResult, attribute_control, control_of_requests
from facegen.metrics.convnet import holdout_split
from facegen.metrics.detector import encoded, real_vs_synthetic
from facegen.metrics.diversity import latent_diversity
from facegen.metrics.feature_distance import fid_kid
from facegen.metrics.identity import Embed, IdentityNetwork, far_threshold, identity_preservation
from facegen.metrics.precision_recall import precision_recall_density_coverage
from facegen.paths import CONTROL_SAMPLES, GAN_CHECKPOINT_NAME, GAN_METRICS, GAN_PLOTS

log = logging.getLogger(__name__)


def evaluate_generator(
    params: Params,
    identity: IdentityNetwork | None = None,
    metrics_file: Path = GAN_METRICS,
    plots_dir: Path = GAN_PLOTS,
) -> dict:
    """Train the attribute classifier on the prepared faces, then score the `train_gan` generator with it; edits
    keep identity as ``identity`` sees it (None: as the attribute classifier's features do)."""
    start, e = time.perf_counter(), params.evaluate
    model = FaceModel.load(params.gan.out / GAN_CHECKPOINT_NAME, sampling=params.sampling)
    attributes = list(model.attributes)
    faces = PreparedFaces(params.prepare.out, attributes=attributes)
    images = np.asarray(faces.images)
    rows = faces.annotations[attributes].to_numpy(np.float32)
    identities = faces.annotations["identity"].to_numpy()
    if images.shape[1] != model.resolution:
        raise ValueError(
            f"{params.prepare.out} holds {images.shape[1]} px faces but the generator makes "
            f"{model.resolution} px ones; re-run train_gan after changing data.image_size"
        )

    classifier, accuracy = train_attribute_classifier(images, rows, attributes, e.classifier, identities)
    classifier.save(e.classifier_out)
    _, held_out = holdout_split(len(images), e.classifier.holdout_fraction, e.classifier.seed, identities)

    rng = np.random.default_rng(e.seed)
    real = images[np.sort(rng.choice(len(images), min(e.samples, len(images)), replace=False))]
    fake = model.sample(torch.from_numpy(rows[rng.choice(len(rows), e.samples)]), seed=e.seed)
    metrics: dict = {
        "generator": {
            "loss": model.config.loss,
            "checkpoint_sha256": model.checkpoint_sha256,
            **params.sampling.model_dump(),
        },
        "classifier": {
            "heldout_accuracy": accuracy,
            "heldout_accuracy_mean": _mean(accuracy),
            "heldout_balanced_accuracy": classifier.report["heldout_balanced_accuracy"],
            "heldout_images": classifier.report["heldout_images"],
        },
        **fid_kid(classifier.feature_extractor(), real, fake, e.kid_subset_size, e.kid_subsets, seed=e.seed),
        **precision_recall_density_coverage(classifier.features(real), classifier.features(fake), e.nearest_k),
        "latent_diversity": latent_diversity(
            classifier.features, images, rows, lambda t: model.sample(torch.from_numpy(t), seed=e.seed + 2), seed=e.seed
        ),
    }

    sampled, edited, sources = control(model, classifier, images, rows, held_out, e, rng)
    metrics["control_sampled"] = sampled.accuracy | {"mean": _mean(sampled.accuracy)}
    if model.sampling != SamplingConfig():  # chosen by the discriminator or refined: plain sampling beside it
        plain = model.with_sampling(SamplingConfig())
        accuracy = control_of_requests(
            classifier, attributes, sampled.targets, lambda t: plain.sample(torch.from_numpy(t), seed=e.seed + 1)
        ).accuracy
        metrics["control_sampled_plain"] = accuracy | {"mean": _mean(accuracy)}
    if edited is None:
        log.warning("the generator checkpoint has no attribute editor: edit control and identity are not measured")
        metrics["identity"] = {"measured": 0}
    else:
        metrics["control_edited"] = edited.accuracy | {"mean": _mean(edited.accuracy)}
        embed, embedding = identity_embedding(identity, classifier)
        threshold = far_threshold(embed(images[held_out]), identities[held_out], e.identity_far)
        metrics["identity"] = {
            "measured": 1,
            "embedding": embedding,
            **identity_preservation(
                embed, np.concatenate([sources] * len(attributes)), np.concatenate(edited.images), threshold
            ),
        }

    metrics["detector"] = real_vs_synthetic(
        encoded(real, e.detector_encoding, e.jpeg_quality),
        encoded(fake, e.detector_encoding, e.jpeg_quality),
        e.detector,
    ) | {"encoding": e.detector_encoding}
    metrics["seconds"] = round(time.perf_counter() - start, 1)
    write_json(metrics_file, metrics)
    _write_plots(plots_dir, classifier, sampled.accuracy, edited.accuracy if edited else {}, sampled.images)
    return metrics


def control(
    model: FaceModel,
    classifier: AttributeClassifier,
    images: np.ndarray,
    rows: np.ndarray,
    held_out: np.ndarray,
    config: EvaluateConfig,
    rng: np.random.Generator,
) -> tuple[ControlResult, ControlResult | None, np.ndarray]:
    """Attribute control of ``config.control_samples`` sampled faces per attribute (the other attributes from
    real ``rows``) and, when the model has an editor, of ``config.edits`` held-out real faces edited to flip
    each attribute. Returns (sampled, edited or None, the edited source faces)."""
    attributes = list(model.attributes)
    sampled = attribute_control(
        classifier,
        attributes,
        rows[rng.choice(len(rows), config.control_samples)],
        lambda t: model.sample(torch.from_numpy(t), seed=config.seed + 1),
        flip=False,
    )
    if model.editor is None:
        return sampled, None, images[:0]
    chosen = held_out[rng.choice(len(held_out), config.edits)]
    sources, source_attributes = images[chosen], torch.from_numpy(rows[chosen])
    edited = attribute_control(
        classifier,
        attributes,
        rows[chosen],
        lambda t: model.edit(sources, torch.from_numpy(t), source_attributes=source_attributes),
        flip=True,
    )
    return sampled, edited, sources


def identity_embedding(identity: IdentityNetwork | None, classifier: AttributeClassifier) -> tuple[Embed, str]:
    """The embedding of ``identity`` (loaded now) if there is one, else the attribute classifier's features, with
    a line saying which."""
    if identity is not None:
        return identity.load(), identity.name
    log.warning(
        "no recognition backbone: identity is measured on attribute-classifier features, "
        "which know attributes rather than people"
    )
    return classifier.features, "attribute classifier features (no backbone)"


def _mean(values: dict[str, float]) -> float:
    return round(float(np.mean(list(values.values()))), 4)


def _write_plots(
    plots_dir: Path,
    classifier: AttributeClassifier,
    sampled: dict[str, float],
    edited: dict[str, float],
    sampled_images: list[np.ndarray],
) -> None:
    _write_csv(
        plots_dir / "control_accuracy.csv",
        ["attribute", "sampled", "edited"],
        [[name, value, edited.get(name, "")] for name, value in sampled.items()],
    )
    history = classifier.report["history"]
    _write_csv(plots_dir / "classifier_training.csv", list(history[0]), [list(row.values()) for row in history])
    grid = np.concatenate([images[:8] for images in sampled_images])
    with atomic_file(plots_dir / CONTROL_SAMPLES) as f:
        save_image(to_tensor(grid).add(1).div(2), f, nrow=min(8, len(sampled_images[0])), format="png")


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with atomic_file(path, "w") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
