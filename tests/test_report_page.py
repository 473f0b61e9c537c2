"""The report page: self-contained HTML whose images, tables and text a browser really shows."""

from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image

from facegen.report.page import Figure, Markdown, Section, Table, render_page, write_page
from facegen.report.screenshot import screenshot


def _solid(path, colour) -> None:
    Image.new("RGB", (200, 120), colour).save(path)


def test_page_embeds_everything_and_escapes(tmp_path) -> None:
    _solid(tmp_path / "red.png", (255, 0, 0))
    html = render_page(
        "Study <1>",
        "What **this** answers",
        [
            Section("Samples", "Rows are attributes.", [Figure(tmp_path / "red.png", "a <red> grid")]),
            Section(
                "Numbers",
                blocks=[
                    Table(pd.DataFrame({"condition": ["baseline"], "top-1": [0.5]}), "accuracy"),
                    Markdown("| a | b |\n|---|---|\n| 1 | 2 |"),
                ],
                missing=["metrics/gan.json"],
            ),
        ],
    )
    assert "data:image/png;base64," in html and "red.png" not in html  # self-contained
    assert "Study &lt;1&gt;" in html and "a &lt;red&gt; grid" in html and "<strong>this</strong>" in html
    assert "<caption>accuracy</caption>" in html and "<td>baseline</td>" in html and "<td>2</td>" in html
    assert "Not available yet: metrics/gan.json" in html


def _shown_box(shot: np.ndarray, colour: tuple[int, int, int]) -> tuple[int, int, int, int]:
    """Bounding box (top, bottom, left, right) of the pixels of `colour` (within 4 levels), checked to be one solid
    block."""
    ys, xs = np.nonzero((np.abs(shot - np.array(colour)) <= 4).all(axis=-1))
    assert len(ys), f"no pixel of colour {colour} on screen"
    box = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    assert len(ys) > 0.95 * (box[1] - box[0]) * (box[3] - box[2]), f"colour {colour} is not one solid block: {box}"
    return box


def test_headless_chromium_shows_the_images(tmp_path) -> None:
    _solid(tmp_path / "red.png", (255, 0, 0))
    _solid(tmp_path / "blue.png", (0, 0, 255))
    page = write_page(
        tmp_path / "index.html",
        "Report",
        "lead",
        [
            Section("One", blocks=[Figure(tmp_path / "red.png", "red")]),
            Section("Two", blocks=[Figure(tmp_path / "blue.png", "blue")]),
        ],
    )
    # Tall enough for both sections whatever fonts the machine has; pure colours, so link text (#0000EE) is not
    # taken for the blue image.
    shot = np.asarray(
        Image.open(screenshot(page, tmp_path / "shot.png", width=800, height=2400)).convert("RGB")
    ).astype(int)
    red, blue = _shown_box(shot, (255, 0, 0)), _shown_box(shot, (0, 0, 255))
    for top, bottom, left, right in (red, blue):
        # Each image is shown whole, at least at its own size (200 x 120), with its shape kept (small grids enlarged).
        assert right - left >= 200 and bottom - top >= 120
        assert abs((right - left) / (bottom - top) - 200 / 120) < 0.05
    assert red[1] <= blue[0]  # the red image's section comes first
