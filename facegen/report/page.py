"""A self-contained HTML page (images embedded as data URIs) built from sections of simple blocks."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import pandas as pd
from markdown_it import MarkdownIt

from facegen.io import atomic_file, check_file_output


@dataclass(frozen=True)
class Figure:
    path: Path
    caption: str = ""


@dataclass(frozen=True)
class Table:
    frame: pd.DataFrame
    caption: str = ""


@dataclass(frozen=True)
class Markdown:
    text: str


Block = Figure | Table | Markdown


@dataclass
class Section:
    title: str
    intro: str = ""  # markdown
    blocks: list[Block] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # inputs that were not there (said on the page)


_TEMPLATE = jinja2.Environment(autoescape=True).from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
 body { font: 15px/1.5 system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
 h1 { margin-bottom: .2em; } h2 { border-bottom: 2px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
 nav a { margin-right: 1em; } figure { margin: 1em 0; } figcaption { color: #555; font-size: 90%; }
 img { width: 100%; max-width: 720px; image-rendering: pixelated; border: 1px solid #ccc; }
 table { border-collapse: collapse; margin: 1em 0; } td, th { border: 1px solid #ccc; padding: .25em .6em; }
 th { background: #f3f3f3; } .missing { color: #a40; } .lead { font-size: 110%; color: #333; }
</style></head><body>
<h1>{{ title }}</h1>
<div class="lead">{{ lead | safe }}</div>
<nav>{% for s in sections %}<a href="#s{{ loop.index }}">{{ s.title }}</a>{% endfor %}</nav>
{% for s in sections %}
<h2 id="s{{ loop.index }}">{{ s.title }}</h2>
{{ s.intro | safe }}
{% for b in s.blocks %}{{ b | safe }}{% endfor %}
{% if s.missing %}<p class="missing">Not available yet: {{ s.missing | join(', ') }}.</p>{% endif %}
{% endfor %}
<footer><p><small>{{ footer }}</small></p></footer>
</body></html>
""")

_MARKDOWN = MarkdownIt("commonmark").enable("table")


def markdown_html(text: str) -> str:
    return _MARKDOWN.render(text)


def _image_uri(path: Path) -> str:
    kind = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".svg": "svg+xml"}[path.suffix.lower()]
    return f"data:image/{kind};base64,{base64.b64encode(path.read_bytes()).decode()}"


def _block_html(block: Block) -> str:
    escape = jinja2.filters.escape
    if isinstance(block, Figure):
        return (
            f'<figure><img src="{_image_uri(block.path)}" alt="{escape(block.caption)}">'
            f"<figcaption>{escape(block.caption)}</figcaption></figure>"
        )
    if isinstance(block, Table):
        caption = f"<caption>{escape(block.caption)}</caption>" if block.caption else ""
        return block.frame.to_html(index=False, border=0, na_rep="–").replace(">\n  <thead>", f">{caption}<thead>", 1)
    return markdown_html(block.text)


def render_page(title: str, lead: str, sections: list[Section], footer: str = "") -> str:
    """The page as one HTML string; `lead` and section intros are markdown."""
    rendered = [
        {
            "title": s.title,
            "intro": markdown_html(s.intro),
            "blocks": [_block_html(b) for b in s.blocks],
            "missing": s.missing,
        }
        for s in sections
    ]
    return _TEMPLATE.render(title=title, lead=markdown_html(lead), sections=rendered, footer=footer)


def write_page(path: Path, title: str, lead: str, sections: list[Section], footer: str = "") -> Path:
    """Write the page atomically; an existing file is replaced only if it is a page of this template."""
    check_file_output(Path(path), is_report_page, "a facegen report page")
    with atomic_file(path, "w") as f:
        f.write(render_page(title, lead, sections, footer))
    return path


def is_report_page(path: Path) -> bool:
    """Whether ``path`` starts as this template's pages do (its style sheet), read no further than that."""
    style = _TEMPLATE.render(title="", lead="", sections=[], footer="").split("</title>")[1].split("</style>")[0]
    with open(path, "rb") as f:
        start = f.read(len(style) + 4096).decode("utf-8", "replace")
    return start.startswith("<!doctype html>") and style in start
