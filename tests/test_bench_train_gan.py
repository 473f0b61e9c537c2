"""bench.train_gan's cases on a tiny cache made here: what each case times, and the reference's 64 px guard."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from bench.train_gan import _case
from facegen.config import GanConfig


def _cache(root: Path, n: int = 16, size: int = 32) -> Path:
    """A prepare-layout cache of n random faces with every default conditioned attribute."""
    rng = np.random.default_rng(0)
    root.mkdir()
    np.save(root / "images.npy", rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8))
    rows = [
        {
            "image_id": f"{i:06d}.jpg",
            "identity": str(i % 4),
            "split": "train",
            **{a: int(rng.integers(0, 2)) for a in GanConfig().attributes},
        }
        for i in range(n)
    ]
    pd.DataFrame(rows).to_parquet(root / "annotations.parquet")
    (root / "meta.json").write_text("{}")
    return root


def test_editor_case_times_the_loader_and_in_memory_batches_side_by_side(tmp_path: Path) -> None:
    cache = str(_cache(tmp_path / "prepared"))
    result = _case("cgan+editor", "demo", cache, steps=2, batch_size=4, device=torch.device("cpu"))
    loader, preloaded = result["s_per_step"], result["preloaded_s_per_step"]
    assert loader > 0 and preloaded > 0
    assert result["loader_slowdown"] == pytest.approx(loader / preloaded - 1, abs=0.02)
    assert result["img_per_s"] == pytest.approx(4 / loader, rel=0.02)
    plain = _case("cgan", "demo", cache, steps=1, batch_size=4, device=torch.device("cpu"))
    assert plain["s_per_step"] > 0 and "preloaded_s_per_step" not in plain and "loader_slowdown" not in plain


def test_reference_dcgan_is_skipped_with_a_reason_below_64_px(tmp_path: Path) -> None:
    cache = str(_cache(tmp_path / "prepared"))
    result = _case("dcgan", "demo", cache, steps=1, batch_size=4, device=torch.device("cpu"))
    assert "s_per_step" not in result and "64 x 64" in result["skipped"] and cache in result["skipped"]
