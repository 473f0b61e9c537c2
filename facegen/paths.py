"""Where the study's artefacts live: the one home of every path that is not a parameter in params.yaml.

Paths that params.yaml sets (``prepare.out``, ``gan.out``, ``generate.out``, ``report.out``, ...) are read from the
typed config (facegen/config.py), whose defaults come from here. dvc.yaml names the same paths (relative to the
project root) as the stages' deps, outs, metrics and plots; tests/test_stage_deps.py checks that they agree.
"""

from __future__ import annotations

from pathlib import Path

# Stage prepare
PREPARED = Path("data/prepared")  # default of prepare.out
PREPARE_METRICS = Path("metrics/prepare.json")

# Stage train_gan
GAN_OUT = Path("models/gan")  # default of gan.out
GAN_CHECKPOINT_NAME = "checkpoint.pt"  # in gan.out
GAN_CHECKPOINT = GAN_OUT / GAN_CHECKPOINT_NAME
TRAIN_GAN_METRICS = Path("metrics/train_gan.json")
TRAIN_GAN_CONFIG = Path("metrics/train_gan_config.json")  # the resolved gan config (profile presets applied)


def train_gan_files(section: str) -> tuple[Path, Path]:
    """(metrics, resolved settings) files of training params' generator ``section`` (facegen.config.GAN_SECTIONS):
    train_gan.json and train_gan_config.json for gan, train_<section>.json and train_<section>_config.json else."""
    if section == "gan":
        return TRAIN_GAN_METRICS, TRAIN_GAN_CONFIG
    return Path(f"metrics/train_{section}.json"), Path(f"metrics/train_{section}_config.json")


# Stage evaluate_gan
ATTRIBUTE_CLASSIFIER = Path("models/attribute_classifier.pt")
GAN_METRICS = Path("metrics/gan.json")
GAN_PLOTS = Path("plots/evaluate")  # control_accuracy.csv, classifier_training.csv, ...
CONTROL_SAMPLES = "control_samples.png"  # ... and, in GAN_PLOTS, the faces whose attribute control was measured

# Stage generate
SYNTHETIC = Path("data/synthetic")  # default of generate.out
GENERATE_METRICS = Path("metrics/generate.json")

# Stage pretrain_backbone
BACKBONE = Path("models/backbone.pt")  # the recognition backbone every later stage reads
BACKBONE_TRAINING = Path("models/backbone_training")  # its resumable checkpoint (persisted by dvc across runs)
PRETRAIN_METRICS = Path("metrics/pretrain_backbone.json")
PRETRAIN_CURVE = Path("metrics/pretrain_backbone.csv")

# Stage train_recognizer@<condition>
EMBEDDINGS = Path("data/embeddings")  # content-addressed cache shared by conditions and seeds
OUTCOMES = Path("data/recognition")  # <condition>.parquet: per-photo outcomes
RECOGNITION_METRICS = Path("metrics/recognition")  # <condition>.json

# Stage compare
RECOGNITION_SUMMARY = Path("metrics/recognition.json")
RECOGNITION_TABLE = Path("metrics/recognition.md")
RECOGNITION_PLOT = Path("plots/recognition.png")

# Stage report
REPORT = Path("reports/index.html")  # default of report.out

# The faces64 study's own stages (studies/faces64/dvc.yaml; paths relative to that folder)
TEACHER_EMBEDDINGS = Path("data/teacher")  # default of recognition.teacher.embeddings
TEACHER_METRICS = Path("metrics/teacher_embeddings.json")
DISTILLED = Path("models/distilled.pt")  # default of recognition.distill.out
DISTILL_TRAINING = Path("models/distill_training")  # its resumable checkpoint (persisted by dvc across runs)
DISTILL_METRICS = Path("metrics/distill_backbone.json")
DISTILL_CURVE = Path("metrics/distill_backbone.csv")
ATTENDANCE_RECOGNIZER = Path("studies/faces64") / DISTILLED  # default of recognition.pretrained (project root)
BACKBONES_SUMMARY = Path("metrics/backbones.json")  # stage compare_backbones
BACKBONES_TABLE = Path("metrics/backbones.md")
BACKBONES_PLOT = Path("plots/backbones.png")
AUGMENT_FACES = Path("data/augment")  # stage augment_faces: teacher-verified GAN edits and generator samples
AUGMENT_FACES_METRICS = Path("metrics/augment_faces.json")
AUGMENT_FACES_GRID = Path("plots/augment_edits.png")
AUGMENT_WORK = Path("data/augmentation_cache")  # stage augmentation: trunk features, content-addressed (persisted)
AUGMENTATION_SUMMARY = Path("metrics/augmentation.json")  # paired differences to baseline per condition
AUGMENTATION_TABLE = Path("metrics/augmentation.md")
AUGMENTATION_OUTCOMES = Path("data/augmentation_outcomes.parquet")  # per photo, draw, seed and condition
AUGMENTATION_PLOT = Path("plots/augmentation.png")  # forest plot of the paired differences

# The ownphotos study's own stage photo_folder (studies/ownphotos/dvc.yaml)
PHOTO_FOLDER = Path("data/photos")  # default of photo_folder.out: <person>/<photo>.jpg, the user's own photos
PHOTO_FOLDER_PEOPLE = Path("people.csv")  # default of photo_folder.people: who is in it (kept out of training)

# The celeba64 study's own stage evaluate_editors (studies/celeba64/dvc.yaml); it writes GAN_METRICS too
EDITORS_TABLE = Path("metrics/gan.md")
EDIT_OUTCOMES = Path("data/edit_outcomes.parquet")  # one row per editor, attribute, strength and source photo
EDITS_GRID = Path("plots/edits.png")  # held-out photos and their edits, both editors side by side
IDENTITY_CURVES = Path("plots/identity_curves.png")  # verified share over thresholds: edits, references, real
MEMORISATION_GRID = Path("plots/nearest_training_faces.png")  # generated faces beside their nearest training faces
RATING_SET = Path("data/rating_set")  # real and edited faces shuffled for people to tell apart (facegen rate serve)
