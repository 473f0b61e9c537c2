"""The Dask benchmark runs on a few real photos and records photos/s each way and that the bytes agree."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from bench import scale_out


@pytest.mark.slow
def test_the_benchmark_records_each_way_and_the_same_bytes(shared_celeba: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "scale_out.json"
    monkeypatch.setattr(sys, "argv", ["scale_out", "--photos", "4", "--out", str(out)])
    scale_out.main()
    result = json.loads(out.read_text())
    assert set(result["runs"]) == {"local", "dask_1_worker", "dask_2_workers"}
    assert all(run["photos"] == 4 and run["photos_per_second"] > 0 for run in result["runs"].values())
    assert result["same_bytes_as_local"] == {"dask_1_worker": True, "dask_2_workers": True}
    assert result["machine"] and result["date"] and result["command"].startswith("python -m bench.scale_out")
