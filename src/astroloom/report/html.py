"""A single self-contained HTML report: figures embedded, tables inline, no server needed."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #1d2330; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.8em 0; }
td, th { border: 1px solid #ccd; padding: 4px 10px; text-align: right; }
th { background: #eef1f6; } td:first-child, th:first-child { text-align: left; }
td.best { font-weight: bold; background: #e6f4e6; }
img { max-width: 100%; } .note { color: #555; font-size: 0.92em; }
"""


@dataclass
class Report:
    title: str
    subtitle: str = ""
    parts: list[str] = field(default_factory=list)

    def heading(self, text: str) -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def paragraph(self, text: str, note: bool = False) -> None:
        cls = ' class="note"' if note else ""
        self.parts.append(f"<p{cls}>{html.escape(text)}</p>")

    def table(
        self, header: list[str], rows: list[list[str]], best: list[int | None] | None = None
    ) -> None:
        """``best[i]`` is the column index to highlight in row ``i``."""
        out = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"]
        for i, row in enumerate(rows):
            cells = []
            for j, cell in enumerate(row):
                cls = ' class="best"' if best and best[i] == j else ""
                cells.append(f"<td{cls}>{html.escape(cell)}</td>")
            out.append("<tr>" + "".join(cells) + "</tr>")
        self.parts.append("".join(out) + "</table>")

    def figure(self, png: str | Path, caption: str = "") -> None:
        data = base64.b64encode(Path(png).read_bytes()).decode()
        cap = f"<p class='note'>{html.escape(caption)}</p>" if caption else ""
        self.parts.append(
            f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(caption)}'>"
            f"{cap}</figure>"
        )

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        body = "\n".join(self.parts)
        sub = f"<p class='note'>{html.escape(self.subtitle)}</p>" if self.subtitle else ""
        title = html.escape(self.title)
        path.write_text(
            f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
            f"<style>{STYLE}</style></head><body><h1>{title}</h1>{sub}\n{body}\n"
            "</body></html>\n"
        )
        return path
