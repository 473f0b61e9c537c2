"""The augmentation experiment on the distilled facenet (issue 19): every condition, roster draw and training
seed, as one table of per-photo outcomes.

Conditions add ``budget`` images per enrolment photo (none for ``baseline``):
- ``classic``: torchvision copies (flip, crop, colour jitter), redrawn per training seed;
- ``gan_<primary>``: the teacher-ranked top ``budget`` edits towards the primary attribute (Eyeglasses);
- ``gan_mixed``: the same budget shared in turn among ``mixed_attributes`` (Eyeglasses, Smiling).

Three recognizers ("families") use them:
- ``prototypes``: the frozen distilled model, nearest class mean over enrolment and added images (cheap);
- ``finetuned``: the last block and a CosFace head over the roster retrained on them, per training seed;
- ``embedding``: no added enrolment images; the last block retrained on the background people, without
  (``baseline``) or with (``gan_trained``) teacher-verified GAN edits of background people (same identity,
  attribute added) and generator samples (distillation targets only), per training seed; then prototypes.

Every family sets its open-set threshold on the calibration people (at ``recognition.far``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from facegen.config import AugmentationConfig, ClassicAugmentation
from facegen.io import Layout, atomic_dir
from recognition.augment import classic_copies
from recognition.classifier import NearestClassMean, threshold_at_far
from recognition.distill import centred_targets
from recognition.embeddings import EmbeddingCache
from recognition.last_block import LastBlock, Training, finetune_roster, retrain_embedding
from recognition.pretrain import identity_labels
from recognition.sets import FaceSet
from recognition.verified_edits import TABLE_COLUMNS, MadeFaces

AUGMENT_META = "meta.json"
AUGMENT_LAYOUT = Layout(
    "augmentation faces", AUGMENT_META, ("images.npy", "faces.parquet", "teacher.npy", AUGMENT_META)
)
FAMILIES = ("prototypes", "finetuned", "embedding")


def write_made_faces(folder: Path, made: MadeFaces, meta: dict) -> None:
    """images.npy, faces.parquet, teacher.npy and meta.json, as one folder written atomically."""
    with atomic_dir(folder, AUGMENT_LAYOUT) as tmp:
        np.save(tmp / "images.npy", made.images)
        made.table.to_parquet(tmp / "faces.parquet", index=False)
        np.save(tmp / "teacher.npy", made.teacher)
        (tmp / AUGMENT_META).write_text(json.dumps(meta, indent=2) + "\n")


def read_made_faces(folder: Path) -> MadeFaces:
    folder = Path(folder)
    if not (folder / AUGMENT_META).is_file():
        raise FileNotFoundError(f"{folder}: no augmentation faces here; run `dvc repro augment_faces` first")
    made = MadeFaces(
        np.load(folder / "images.npy"), pd.read_parquet(folder / "faces.parquet"), np.load(folder / "teacher.npy")
    )
    missing = [c for c in TABLE_COLUMNS if c not in made.table.columns]
    if missing or not len(made.images) == len(made.table) == len(made.teacher):
        raise ValueError(f"{folder}: columns {missing} missing or images/table/teacher lengths differ")
    return made


def conditions(settings: AugmentationConfig) -> tuple[str, ...]:
    return ("baseline", "classic", f"gan_{settings.primary_attribute}", "gan_mixed")


@dataclass(frozen=True)
class Draw:
    """One roster draw's sets and their trunk features."""

    index: int
    sets: dict[str, FaceSet]
    trunk: dict[str, np.ndarray]  # calibration, enrol, checkin, visitor
    enrol_flipped: np.ndarray


@dataclass(frozen=True)
class Added:
    """A condition's extra enrolment images of one draw and seed: trunk features (both orientations) and owners."""

    trunk: np.ndarray
    trunk_flipped: np.ndarray
    identities: np.ndarray


class Experiment:
    """Holds the shared inputs; :meth:`outcomes` runs every family, condition, draw and seed."""

    def __init__(
        self,
        settings: AugmentationConfig,
        classic: ClassicAugmentation,
        block: LastBlock,
        trunk: EmbeddingCache,
        trunk_flipped: EmbeddingCache,
        made: MadeFaces,
        far: float,
        gap_attributes: Sequence[str],
        margin_weight: float = 0.1,
    ) -> None:
        self.settings, self.classic, self.block, self.far = settings, classic, block, far
        self.margin_weight = margin_weight  # of CosFace when the embedding is retrained (as in its distillation)
        self.trunk, self.trunk_flipped, self.made, self.gap_attributes = trunk, trunk_flipped, made, gap_attributes
        edits = made.table["kind"] == "enrolment_edit"
        self.edit_rows = np.flatnonzero(edits.to_numpy())
        self.edit_trunk = trunk.embed(made.images[self.edit_rows])
        self.edit_trunk_flipped = trunk_flipped.embed(made.images[self.edit_rows])

    def draw(self, index: int, sets: dict[str, FaceSet]) -> Draw:
        names = ("calibration", "enrol", "checkin", "visitor")
        return Draw(
            index,
            sets,
            {n: self.trunk.embed(sets[n].images) for n in names},
            self.trunk_flipped.embed(sets["enrol"].images),
        )

    def added(self, condition: str, draw: Draw, seed: int) -> Added | None:
        """The condition's extra images for this draw and seed (``budget`` per enrolment photo); None: baseline."""
        enrol = draw.sets["enrol"]
        budget = self.settings.budget
        if condition == "baseline":
            return None
        if condition == "classic":
            images = classic_copies(enrol.images, budget, self.classic, seed)
            owners = np.tile(enrol.annotations["identity"].astype(str).to_numpy(), budget)
            return Added(self.trunk.embed(images), self.trunk_flipped.embed(images), owners)
        attributes = (
            [self.settings.primary_attribute]
            if condition.startswith("gan_") and condition != "gan_mixed"
            else list(self.settings.mixed_attributes)
        )
        table = self.made.table.iloc[self.edit_rows].reset_index(drop=True)
        quota = {a: budget // len(attributes) + (i < budget % len(attributes)) for i, a in enumerate(attributes)}
        wanted = table["source_image"].isin(set(enrol.annotations["image_id"].astype(str)))
        chosen = [
            np.flatnonzero((wanted & (table["attribute"] == a) & (table["rank"] < q)).to_numpy())
            for a, q in quota.items()
        ]
        rows = np.sort(np.concatenate(chosen))
        if len(rows) != budget * len(enrol.images):
            raise ValueError(
                f"{condition}: {len(rows)} edits for {len(enrol.images)} enrolment photos x budget {budget}; "
                "augment_faces was run for other roster draws or strengths: run `dvc repro augment_faces`"
            )
        return Added(self.edit_trunk[rows], self.edit_trunk_flipped[rows], table["identity"].to_numpy()[rows])

    def outcomes(self, draws: Sequence[Draw], background: tuple[np.ndarray, np.ndarray, np.ndarray]) -> pd.DataFrame:
        """One row per family, condition, draw, seed and test photo (check-ins and visitors)."""
        frames = []
        jobs = [(d, c, s) for d in draws for c in conditions(self.settings) for s in self.settings.training_seeds]
        for draw, condition, seed in tqdm(jobs, desc="augmentation: roster conditions", unit="run"):
            added = self.added(condition, draw, seed)
            frames.append(self._prototypes(draw, added).assign(family="prototypes", condition=condition, seed=seed))
            frames.append(self._finetuned(draw, added, seed).assign(family="finetuned", condition=condition, seed=seed))
        for seed, condition, block in self._embedding_blocks(*background):
            for draw in draws:
                embed = {n: block.embed(t) for n, t in draw.trunk.items()}
                frames.append(
                    self._score(draw, NearestClassMean(embed["enrol"], _owners(draw.sets["enrol"])), embed).assign(
                        family="embedding", condition=condition, seed=seed
                    )
                )
        return pd.concat(frames, ignore_index=True)

    def _prototypes(self, draw: Draw, added: Added | None) -> pd.DataFrame:
        embed = {n: self.block.embed(t) for n, t in draw.trunk.items()}
        enrol, owners = [embed["enrol"]], [_owners(draw.sets["enrol"])]
        if added is not None:
            enrol.append(self.block.embed(added.trunk))
            owners.append(added.identities)
        return self._score(draw, NearestClassMean(np.concatenate(enrol), np.concatenate(owners)), embed)

    def _finetuned(self, draw: Draw, added: Added | None, seed: int) -> pd.DataFrame:
        trunk = [draw.trunk["enrol"], draw.enrol_flipped]
        owners = [_owners(draw.sets["enrol"])] * 2
        if added is not None:
            trunk += [added.trunk, added.trunk_flipped]
            owners += [added.identities] * 2
        owners = np.concatenate(owners)
        classes = np.unique(owners)
        s = self.settings
        block, weights = finetune_roster(
            self.block,
            np.concatenate(trunk),
            np.searchsorted(classes, owners),
            Training(s.finetune_epochs, s.finetune_lr, s.batch_size, seed),
        )
        embed = {n: block.embed(t) for n, t in draw.trunk.items()}
        return self._score(draw, NearestClassMean.from_prototypes(classes, weights), embed)

    def _embedding_blocks(
        self, trunk: np.ndarray, descriptors: np.ndarray, identities: np.ndarray
    ) -> Iterator[tuple[int, str, LastBlock]]:
        """Per seed: the last block retrained on the background people alone, then with the GAN faces added."""
        s = self.settings
        table = self.made.table
        extra = np.flatnonzero(
            (table["kind"].isin(["background_edit", "sample"]) & table["verified"]).to_numpy()
            & ~np.isnan(self.made.teacher).any(axis=1)
        )
        extra_kind, extra_owner = table["kind"].to_numpy()[extra], table["identity"].to_numpy()[extra].astype(str)
        names = np.concatenate([identities, np.where(extra_kind == "sample", "", extra_owner)])
        labels = np.full(len(names), -1)  # generator samples have no identity: distillation targets only
        labels[names != ""] = identity_labels(names[names != ""])
        extra_trunk = self.trunk.embed(self.made.images[extra])
        # centred on the background people's mean, as distillation centred the targets
        targets = centred_targets(np.concatenate([descriptors, self.made.teacher[extra]]), descriptors.mean(axis=0))
        n = len(trunk)
        for seed in s.training_seeds:
            training = Training(s.embedding_epochs, s.embedding_lr, s.batch_size, seed)
            alone = retrain_embedding(self.block, trunk, targets[:n], labels[:n], training, self.margin_weight)
            yield seed, "baseline", alone
            with_gan = np.concatenate([trunk, extra_trunk])
            yield (
                seed,
                "gan_trained",
                retrain_embedding(self.block, with_gan, targets, labels, training, self.margin_weight),
            )

    def _score(self, draw: Draw, classifier: NearestClassMean, embed: dict[str, np.ndarray]) -> pd.DataFrame:
        threshold = threshold_at_far(classifier.predict(embed["calibration"]).score, self.far)
        frames = []
        for kind in ("checkin", "visitor"):
            found = classifier.predict(embed[kind])
            annotations = draw.sets[kind].annotations
            true = annotations["identity"].astype(str).to_numpy()
            frames.append(
                pd.DataFrame(
                    {
                        "draw": draw.index,
                        "kind": kind,
                        "image_id": annotations["image_id"].astype(str).to_numpy(),
                        "identity": true,
                        "correct": classifier.classes[found.label] == true,
                        "accepted": found.score > threshold,
                        **{f"group_{a}": annotations[a].to_numpy() for a in self.gap_attributes},
                    }
                )
            )
        return pd.concat(frames, ignore_index=True)


def _owners(faces: FaceSet) -> np.ndarray:
    return faces.annotations["identity"].astype(str).to_numpy()
