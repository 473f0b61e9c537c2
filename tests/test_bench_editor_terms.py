"""The editor-terms benchmark (bench/editor_terms.py) times the celeba64 study's identity editor and its region and
feature variants as the study configures them, and writes what it measured."""

from __future__ import annotations

import json
import sys

import pytest

from bench import editor_terms

pytestmark = pytest.mark.slow


def test_times_each_section_and_records_the_machine(shared_faces64, tmp_path, monkeypatch) -> None:
    out = tmp_path / "editor_terms.json"
    argv = ["editor_terms", "--steps", "1", "--shared", str(shared_faces64), "--out", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    editor_terms.main()
    result = json.loads(out.read_text())
    assert set(result["seconds_per_step"]) == set(editor_terms.SECTIONS)
    assert all(s > 0 for s in result["seconds_per_step"].values()) and result["relative_to_gan"]["gan"] == 1.0
    assert result["batch_size"]["gan_feature"] == 32 and result["machine"]


def test_too_few_faces_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(SystemExit, match="0 faces64 crops, 4 needed"):
        editor_terms.faces(tmp_path, 4)
