"""A small static HTML report: sections of text, tables and pictures (used by ``cohesiv demo``)."""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from pathlib import Path

from cohesiv.io.atomic import atomic_write_text


@dataclass
class Section:
    """One section of the report.

    Attributes:
        title: the heading.
        text: paragraphs (plain text; escaped).
        tables: (caption, header, rows) triples.
        figures: (image path, caption) pairs; paths are made relative to the report.
    """

    title: str
    text: list[str] = field(default_factory=list)
    tables: list[tuple[str, list[str], list[list]]] = field(default_factory=list)
    figures: list[tuple[str | Path, str]] = field(default_factory=list)


_CSS = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0} td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3} td:first-child,th:first-child{text-align:left}
.figs{display:flex;flex-wrap:wrap;gap:10px} figure{margin:0;max-width:380px}
figure img{max-width:100%;border:1px solid #ccc} figcaption{font-size:.85em;color:#555}
caption{font-weight:600;text-align:left;padding:.2em 0}
"""


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.1f}" if abs(v) >= 1 else f"{v:.3g}"
    return html.escape("" if v is None else str(v))


def write_report(path: str | Path, title: str, sections: list[Section]) -> Path:
    """Write the report to ``path`` (HTML, atomically) and return the path."""
    path = Path(path)
    root = path.parent
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>",
    ]
    for s in sections:
        parts.append(f"<h2>{html.escape(s.title)}</h2>")
        parts += [f"<p>{html.escape(t)}</p>" for t in s.text]
        for caption, header, rows in s.tables:
            parts.append(f"<table><caption>{html.escape(caption)}</caption><tr>")
            parts += [f"<th>{html.escape(str(h))}</th>" for h in header]
            parts.append("</tr>")
            for row in rows:
                parts.append("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>")
            parts.append("</table>")
        if s.figures:
            parts.append("<div class='figs'>")
            for img, cap in s.figures:
                rel = os.path.relpath(Path(img), root)
                parts.append(
                    f"<figure><a href='{html.escape(rel)}'><img src='{html.escape(rel)}' loading='lazy'></a>"
                    f"<figcaption>{html.escape(cap)}</figcaption></figure>"
                )
            parts.append("</div>")
    parts.append("</body></html>")
    atomic_write_text(path, "\n".join(parts))
    return path
