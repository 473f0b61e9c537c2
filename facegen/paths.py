"""Where the study's stages write the metrics and plots that other stages and the report read.

dvc.yaml names the same paths (relative to the project root) as the stages' `metrics` and `plots`.
"""

from __future__ import annotations

from pathlib import Path

GAN_METRICS = Path("metrics/gan.json")  # stage evaluate_gan
GAN_PLOTS = Path("plots/evaluate")  # stage evaluate_gan: control_accuracy.csv, classifier_training.csv, ...
CONTROL_SAMPLES = "control_samples.png"  # ... and, in GAN_PLOTS, the faces whose attribute control was measured
RECOGNITION_SUMMARY = Path("metrics/recognition.json")  # stage compare
RECOGNITION_TABLE = Path("metrics/recognition.md")  # stage compare
RECOGNITION_PLOT = Path("plots/recognition.png")  # stage compare
