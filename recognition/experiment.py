"""One condition of the attendance experiment: enrol the roster (with that condition's extra images), set the
open-set threshold on the calibration people, then name the check-ins and reject the visitors, per seed.

The per-photo outcomes go to a parquet table (:mod:`recognition.outcomes`; ``compare`` bootstraps from it); the
seed-averaged metrics to ``metrics/recognition/<condition>.json``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from facegen.config import Params
from recognition.augment import classic_copies, gan_edits
from recognition.classifier import NearestClassMean, threshold_at_far
from recognition.models.embeddings import EmbeddingCache, load_embedder
from recognition.metrics import SeedOutcome, outcome_metrics
from recognition.sets import attendance_sets


def run_condition(
    params: Params, condition: str, backbone: Path, prepared: Path, cache_root: Path
) -> tuple[list[SeedOutcome], dict]:
    """Outcomes per seed and a summary (metrics per seed and their mean, sizes, timings)."""
    rec = params.recognition
    start = time.perf_counter()
    sets = attendance_sets(
        prepared, params.attendance, rec.calibration_people, names=("calibration", "enrol", "checkin", "visitor")
    )
    cache = EmbeddingCache(
        cache_root, load_embedder(backbone, rec.input_size, rec.embed_batch_size, rec.teacher.workers, prepared)
    )
    enrol, checkin = sets["enrol"], sets["checkin"]
    real = cache.embed(enrol.images)
    calibration = cache.embed(sets["calibration"].images)
    checkin_embeddings, visitor_embeddings = cache.embed(checkin.images), cache.embed(sets["visitor"].images)
    groups = {a: checkin.annotations[a].to_numpy() for a in params.attendance.gap_attributes}

    outcomes, per_seed, extra_counts = [], [], []
    for seed in rec.seeds:
        embeddings, identities = [real], [enrol.annotations["identity"].to_numpy()]
        if condition in ("classic", "both"):
            embeddings.append(cache.embed(classic_copies(enrol.images, rec.classic_copies, rec.classic, seed)))
            identities.append(np.tile(identities[0], rec.classic_copies))
        if condition in ("gan", "both"):
            images, rows = gan_edits(rec.gan_dataset, enrol.annotations, rec.gan_copies, seed)
            embeddings.append(cache.embed(images))
            identities.append(rows["identity"].to_numpy())
        classifier = NearestClassMean(np.concatenate(embeddings), np.concatenate(identities))
        threshold = threshold_at_far(classifier.predict(calibration).score, rec.far)
        found = classifier.predict(checkin_embeddings)
        outcome = SeedOutcome(
            classifier.labels_of(checkin.annotations["identity"].to_numpy()),
            found.label,
            found.score,
            classifier.predict(visitor_embeddings).score,
            groups,
            threshold,
            len(classifier.classes),
        )
        outcomes.append(outcome)
        per_seed.append({"seed": seed, "threshold": threshold, **outcome_metrics(outcome, rec.far)})
        extra_counts.append(sum(len(e) for e in embeddings[1:]))

    metric_names = [k for k in per_seed[0] if k not in ("seed", "threshold")]
    summary = {
        "condition": condition,
        "mean": {k: float(np.mean([m[k] for m in per_seed])) for k in metric_names},
        "per_seed": per_seed,
        "roster": int(enrol.annotations["identity"].nunique()),
        "enrol_photos": len(enrol.images),
        "augmented_per_seed": int(np.mean(extra_counts)),
        "checkins": len(checkin.images),
        "visitor_photos": len(sets["visitor"].images),
        "calibration_photos": len(sets["calibration"].images),
        "checkins_with": {a: int(g.sum()) for a, g in groups.items()},
        "enrol_with": {a: int(enrol.annotations[a].sum()) for a in groups},
        "embedding_cache": {"hits": cache.hits, "misses": cache.misses},
        "seconds": round(time.perf_counter() - start, 1),
    }
    return outcomes, summary
