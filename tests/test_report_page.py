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
    html = render_page("Study <1>", "What **this** answers", [
        Section("Samples", "Rows are attributes.", [Figure(tmp_path / "red.png", "a <red> grid")]),
        Section("Numbers", blocks=[Table(pd.DataFrame({"condition": ["baseline"], "top-1": [0.5]}), "accuracy"),
                                   Markdown("| a | b |\n|---|---|\n| 1 | 2 |")],
                missing=["metrics/gan.json"]),
    ])
    assert "data:image/png;base64," in html and "red.png" not in html  # self-contained
    assert "Study &lt;1&gt;" in html and "a &lt;red&gt; grid" in html and "<strong>this</strong>" in html
    assert "<caption>accuracy</caption>" in html and "<td>baseline</td>" in html and "<td>2</td>" in html
    assert "Not available yet: metrics/gan.json" in html


def test_headless_chromium_shows_the_images(tmp_path) -> None:
    _solid(tmp_path / "red.png", (255, 0, 0))
    _solid(tmp_path / "blue.png", (0, 0, 255))
    page = write_page(tmp_path / "index.html", "Report", "lead", [
        Section("One", blocks=[Figure(tmp_path / "red.png", "red")]),
        Section("Two", blocks=[Figure(tmp_path / "blue.png", "blue")]),
    ])
    shot = np.asarray(Image.open(screenshot(page, tmp_path / "shot.png", width=800, height=900)).convert("RGB")).astype(int)
    red = (shot[..., 0] > 200) & (shot[..., 1] < 50) & (shot[..., 2] < 50)
    blue = (shot[..., 2] > 200) & (shot[..., 0] < 50) & (shot[..., 1] < 50)
    # Both images are on screen at their size (200 x 120 CSS px), the red one above the blue one.
    assert red.sum() > 0.8 * 200 * 120 and blue.sum() > 0.8 * 200 * 120
    assert np.nonzero(red)[0].mean() < np.nonzero(blue)[0].mean()
