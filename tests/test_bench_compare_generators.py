"""bench.compare_generators: variant parsing, the table, and writing it between the markers of a doc."""

from __future__ import annotations

import argparse

import pytest

from bench.compare_generators import END, START, parse_variant, table, write_between_markers

METRICS = {
    "control_sampled": {"mean": 0.9},
    "fid": 12.3456,
    "kid_mean": 0.01,
    "precision": 0.8,
    "recall": 0.7,
    "density": 0.9,
    "coverage": 0.85,
    "latent_diversity": {"ratio": 0.95},
    "identity": {"measured": 0},
    "detector": {"accuracy": 0.61},
}


def test_variants_parse_and_bad_ones_are_refused() -> None:
    assert parse_variant("wgan=gan.loss=wgan-gp,gan.steps=10") == ("wgan", {"gan.loss": "wgan-gp", "gan.steps": "10"})
    with pytest.raises(argparse.ArgumentTypeError, match="NAME=KEY=VALUE"):
        parse_variant("wgan=gan.loss")


def test_table_goes_between_the_markers_only(tmp_path) -> None:
    text = table({"cgan-hinge": METRICS})
    header, rule, row = text.splitlines()
    assert header.count("|") == rule.count("|") == row.count("|") == 13 and set(rule) == {"|", "-"}
    assert row.startswith("| cgan-hinge | 0.9 | n/a | 12.35 |") and "| 0.85 | 0.95 | n/a |" in row
    doc = tmp_path / "RESULTS.md"
    doc.write_text(f"# Results\nbefore\n{START}\nold\n{END}\nafter\n")
    write_between_markers(doc, text)
    assert doc.read_text() == f"# Results\nbefore\n{START}\n{text}{END}\nafter\n"
    (tmp_path / "other.md").write_text("no markers")
    with pytest.raises(ValueError, match="markers"):
        write_between_markers(tmp_path / "other.md", text)
