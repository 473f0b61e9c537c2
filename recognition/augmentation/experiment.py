"""The augmentation experiment on the distilled facenet (issues 19, 28): every recognizer, arm (arms.py), roster
draw, training seed and oracle turn, as one table of per-photo outcomes.

Recognizers ("families"):
- ``prototypes`` (the primary): the frozen model; a person's real enrolment images and the images an arm adds
  weigh 1:1 (``balanced``); ``prototypes_pooled`` (every image weighs one) and ``prototypes_max`` (max over
  single templates) beside it (recognition/classifier.py);
- ``finetuned``: the last block and a CosFace head over the roster retrained on enrolment and added images for
  the same number of steps in every arm; that number is chosen once, on the baseline of draw 0, by validation
  inside the enrolment photos (each fold holds out one photo per person) — :meth:`Experiment.finetune_steps`;
- ``embedding``: no added enrolment images; the last two blocks retrained on the background people without
  (``baseline``) or with (``gan_trained``) their teacher-verified GAN edits, each edit's target being its
  *source photo's* teacher descriptor (the person, not dlib's reaction to drawn glasses), generator samples as
  distillation targets only; the centre from real faces only.

Every run sets its open-set threshold on the calibration people (at ``recognition.far``); their scores are kept
(kind ``calibration``) so that the statistics can resample them too.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from facegen.config import AugmentationConfig
from recognition.augmentation.arms import BASELINE, Added, Arms, Draw, arm_names, oracle_people, turns
from recognition.augmentation.verified_edits import MadeFaces
from recognition.classifier import (
    Combination,
    NearestClassMean,
    NearestTemplate,
    enrolment_classifier,
    threshold_at_far,
)
from recognition.models.distill import centred_targets
from recognition.models.last_block import LastBlock, Training, finetune_roster, retrain_embedding
from recognition.models.pretrain import identity_labels
from recognition.sets import FaceSet

PROTOTYPE_FAMILIES: dict[str, Combination] = {
    "prototypes": "balanced",
    "prototypes_pooled": "pooled",
    "prototypes_max": "max",
}
FAMILIES = (*PROTOTYPE_FAMILIES, "finetuned", "embedding")
PRIMARY_FAMILY = "prototypes"
GAN_TRAINED = "gan_trained"  # the embedding family's arm


@dataclass(frozen=True)
class Background:
    """The background people's real faces: trunk features, teacher descriptors, identities and image ids."""

    trunk: np.ndarray
    descriptors: np.ndarray
    identities: np.ndarray
    image_ids: np.ndarray


class Experiment:
    """Holds the shared inputs; :meth:`outcomes` runs every family, arm, draw, seed and oracle turn."""

    def __init__(
        self,
        settings: AugmentationConfig,
        arms: Arms,
        block: LastBlock,
        made: MadeFaces,
        far: float,
        gap_attributes: Sequence[str],
        lenses: pd.DataFrame | None = None,
        margin_weight: float = 0.1,
    ) -> None:
        self.settings, self.arms, self.block, self.made, self.far = settings, arms, block, made, far
        self.gap_attributes, self.margin_weight = tuple(gap_attributes), margin_weight
        self.lenses = {} if lenses is None else dict(zip(lenses["image_id"].astype(str), lenses["lenses"]))

    def draw(self, index: int, sets: dict[str, FaceSet]) -> Draw:
        names = ("calibration", "enrol", "checkin", "visitor")
        return Draw(
            index,
            sets,
            {n: self.arms.trunk.embed(sets[n].images) for n in names},
            self.arms.trunk_flipped.embed(sets["enrol"].images),
        )

    def finetune_steps(self, draw: Draw) -> tuple[int, dict[int, float]]:
        """The roster fine-tune's length: the grid value with the best mean validation top-1 over folds that each
        hold out one enrolment photo per person (ties: the fewest steps), and the whole curve."""
        owners = _owners(draw.sets["enrol"])
        fold = pd.Series(owners).groupby(owners).cumcount().to_numpy()
        curve = {}
        for steps in tqdm(self.settings.finetune_step_grid, desc="augmentation: fine-tune length", unit="length"):
            scores = []
            for k in np.unique(fold):
                train, held = fold != k, fold == k
                classes, weights, block = self._finetune(
                    draw.trunk["enrol"][train],
                    draw.enrol_flipped[train],
                    owners[train],
                    None,
                    steps,
                    self.settings.training_seeds[0],
                )
                named = classes[(block.embed(draw.trunk["enrol"][held]) @ weights.T).argmax(1)]
                scores.append(np.mean(named == owners[held]))
            curve[int(steps)] = round(float(np.mean(scores)), 4)
        best = max(curve.values())
        return min(s for s, v in curve.items() if v == best), curve

    def outcomes(self, draws: Sequence[Draw], background: Background, steps: int) -> pd.DataFrame:
        """One row per family, arm, draw, seed, turn and photo (calibration, check-in and visitor photos)."""
        frames = []
        s = self.settings
        jobs = [(d, a, t, seed) for d in draws for a in arm_names(s) for t in turns(a, s) for seed in s.training_seeds]
        frozen = {d.index: {n: self.block.embed(t) for n, t in d.trunk.items()} for d in draws}
        for draw, arm, turn, seed in tqdm(jobs, desc="augmentation: roster arms", unit="run"):
            added = self.arms.added(arm, draw, seed, turn)
            run = dict(arm=arm, seed=seed, turn=turn)
            embed = frozen[draw.index]
            extra = None if added is None else self.block.embed(added.trunk)
            for family, rule in PROTOTYPE_FAMILIES.items():
                classifier = enrolment_classifier(
                    embed["enrol"],
                    _owners(draw.sets["enrol"]),
                    extra,
                    None if added is None else added.identities,
                    rule,
                )
                frames.append(self._score(draw, classifier, embed, added).assign(family=family, **run))
            classes, weights, block = self._finetune(
                draw.trunk["enrol"], draw.enrol_flipped, _owners(draw.sets["enrol"]), added, steps, seed
            )
            tuned = {n: block.embed(t) for n, t in draw.trunk.items()}
            classifier = NearestClassMean.from_prototypes(classes, weights)
            frames.append(self._score(draw, classifier, tuned, added).assign(family="finetuned", **run))
        for seed, arm, block in self._embedding_blocks(background):
            for draw in draws:
                embed = {n: block.embed(t) for n, t in draw.trunk.items()}
                classifier = NearestClassMean(embed["enrol"], _owners(draw.sets["enrol"]))
                frames.append(
                    self._score(draw, classifier, embed, None).assign(family="embedding", arm=arm, seed=seed, turn=0)
                )
        return pd.concat(frames, ignore_index=True)

    def _finetune(
        self,
        trunk: np.ndarray,
        trunk_flipped: np.ndarray,
        owners: np.ndarray,
        added: Added | None,
        steps: int,
        seed: int,
    ) -> tuple[np.ndarray, np.ndarray, LastBlock]:
        """(classes, class weights, block) of the roster fine-tune on the photos, their mirror images and the
        added images (mirrored too)."""
        features, labels = [trunk, trunk_flipped], [owners, owners]
        if added is not None:
            features += [added.trunk, added.trunk_flipped]
            labels += [added.identities, added.identities]
        owners_all = np.concatenate(labels).astype(str)
        classes = np.unique(owners_all)
        s = self.settings
        block, weights = finetune_roster(
            self.block,
            np.concatenate(features),
            np.searchsorted(classes, owners_all),
            Training(steps, s.finetune_lr, s.batch_size, seed),
        )
        return classes, weights, block

    def _embedding_blocks(self, background: Background) -> Iterator[tuple[int, str, LastBlock]]:
        """Per seed: the last blocks retrained on the background people alone, then with their GAN faces."""
        s, table = self.settings, self.made.table
        extra = np.flatnonzero(
            (table["kind"].isin(["background_edit", "sample"]) & table["verified"]).to_numpy()
            & ~np.isnan(self.made.teacher).any(axis=1)
        )
        kinds, sources = table["kind"].to_numpy()[extra], table["source_image"].astype(str).to_numpy()[extra]
        row_of = dict(zip(background.image_ids.astype(str), range(len(background.image_ids))))
        edit_targets = np.array(
            [
                background.descriptors[row_of[src]] if kind == "background_edit" else self.made.teacher[i]
                for i, kind, src in zip(extra, kinds, sources)
            ]
        ).reshape(len(extra), -1)
        owners = table["identity"].astype(str).to_numpy()[extra]
        names = np.concatenate([background.identities.astype(str), np.where(kinds == "sample", "", owners)])
        labels = np.full(len(names), -1)  # generator samples have no identity: distillation targets only
        labels[names != ""] = identity_labels(names[names != ""])
        extra_trunk = self.arms.trunk.embed(self.made.images[extra])
        # centred on the background people's mean, as distillation centred the targets
        mean = background.descriptors.mean(axis=0)
        targets = centred_targets(np.concatenate([background.descriptors, edit_targets]), mean)
        n = len(background.trunk)
        for seed in s.training_seeds:
            training = Training.epochs(s.embedding_epochs, n, s.embedding_lr, s.batch_size, seed)
            yield (
                seed,
                BASELINE,
                retrain_embedding(self.block, background.trunk, targets[:n], labels[:n], training, self.margin_weight),
            )
            with_gan = np.concatenate([background.trunk, extra_trunk])
            training = Training.epochs(s.embedding_epochs, len(with_gan), s.embedding_lr, s.batch_size, seed)
            yield (
                seed,
                GAN_TRAINED,
                retrain_embedding(self.block, with_gan, targets, labels, training, self.margin_weight, real=n),
            )

    def _score(
        self,
        draw: Draw,
        classifier: NearestClassMean | NearestTemplate,
        embed: dict[str, np.ndarray],
        added: Added | None,
    ) -> pd.DataFrame:
        threshold = threshold_at_far(classifier.predict(embed["calibration"]).score, self.far)
        held_out = np.zeros(0, np.int64) if added is None else added.held_out
        frames = []
        for kind in ("calibration", "checkin", "visitor"):
            annotations = draw.sets[kind].annotations
            keep = np.ones(len(annotations), bool)
            if kind == "checkin":
                keep[held_out] = False
            found = classifier.predict(embed[kind][keep])
            annotations = annotations[keep]
            true = annotations["identity"].astype(str).to_numpy()
            image_ids = annotations["image_id"].astype(str).to_numpy()
            frames.append(
                pd.DataFrame(
                    {
                        "draw": draw.index,
                        "kind": kind,
                        "image_id": image_ids,
                        "identity": true,
                        "correct": classifier.classes[found.label] == true,
                        "score": found.score,
                        "accepted": found.score > threshold,
                        "oracle_people": (
                            oracle_people(draw.sets["checkin"].annotations, self.settings.primary_attribute)[keep]
                            if kind == "checkin"
                            else False
                        ),
                        "lenses": [self.lenses.get(i, "") for i in image_ids],
                        **{f"group_{a}": annotations[a].to_numpy() for a in self.gap_attributes},
                    }
                )
            )
        return pd.concat(frames, ignore_index=True)


LENSES = ("clear", "sun", "none")


def read_lenses(path: Path) -> pd.DataFrame:
    """The lenses labels (columns image_id, identity, lenses: clear | sun | none), checked row by row."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot read the lenses labels (augmentation.lenses): {err}") from None
    missing = [c for c in ("image_id", "identity", "lenses") if c not in table]
    if missing:
        raise ValueError(f"{path}: no column {missing[0]!r} (augmentation.lenses needs image_id, identity, lenses)")
    wrong = np.flatnonzero(~table["lenses"].isin(LENSES).to_numpy())
    if len(wrong):
        row = int(wrong[0])
        raise ValueError(f"{path}: row {row + 2}: lenses {table['lenses'][row]!r} is not one of {', '.join(LENSES)}")
    return table


def _owners(faces: FaceSet) -> np.ndarray:
    return faces.annotations["identity"].astype(str).to_numpy()
