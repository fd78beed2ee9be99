"""The report's Jinja2 templates (templates/report/) rendered to Markdown, and that Markdown to one
self-contained HTML page. The templates hold the prose and the layout; the sections hand them data.

StrictUndefined: a value the data does not provide stops the report, naming it, instead of printing a blank."""

from __future__ import annotations

import base64
import html
import math
import os
import re
from pathlib import Path

import jinja2

from vitheads import artifacts


def interval(x: dict, digits: int = 3, unit: str = "") -> str:
    """An estimate (or mean) and its 95% interval, signed; a run alone has no interval."""
    low, high = x["ci"]
    value = x.get("estimate", x.get("mean"))
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"{value:+.{digits}f}{unit} (one run: no interval)"
    return f"{value:+.{digits}f}{unit} [{low:+.{digits}f}, {high:+.{digits}f}]"


def share(rate: float, ci: list[float], digits: int) -> str:
    """A proportion and its interval, in percent."""
    return f"{rate:.{digits}%} [{ci[0]:.{digits}%}, {ci[1]:.{digits}%}]"


def from_report(path: Path) -> str:
    """A path as the Markdown in report/ links it."""
    return (path if path.is_absolute() else Path(os.path.relpath(path, artifacts.REPORT))).as_posix()


FILTERS = {"f": format, "interval": interval, "share": share, "from_report": from_report}


def environment(folder: Path = artifacts.REPORT_TEMPLATES) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(FILTERS)
    return env


def tidy(text: str) -> str:
    """Blocks one blank line apart, a paragraph on one line: the templates wrap their prose freely."""
    blocks = [b.strip() for b in re.split(r"\n\s*\n", text) if b.strip()]
    joined = [b if b.startswith(("|", "![")) else " ".join(line.strip() for line in b.splitlines()) for b in blocks]
    return "\n\n".join(joined) + "\n"


def render(template: str, folder: Path = artifacts.REPORT_TEMPLATES, **data) -> str:
    return tidy(environment(folder).get_template(template).render(**data))


def inline(text: str) -> str:
    """Escape, then the two Markdown marks the templates use: **strong** and *emphasis*."""
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(text))
    parts = text.split("*")
    return "".join(f"<em>{p}</em>" if i % 2 else p for i, p in enumerate(parts))


def cells(line: str) -> list[str]:
    """A table row's cells; a `\\|` inside a cell is a literal bar."""
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])]


def table_html(lines: list[str]) -> str:
    header, rows = cells(lines[0]), [cells(line) for line in lines[2:]]
    if any(len(row) != len(header) for row in rows):
        raise ValueError(f"a row of the table {lines[0]!r} does not have {len(header)} cells")
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def figure_html(block: str, markdown_dir: Path) -> str:
    """The image embedded as a data URI: the page opens offline and mails as an attachment."""
    caption, link = re.match(r"!\[(.*)\]\((.*)\)", block).groups()
    data = base64.b64encode(Path(os.path.normpath(markdown_dir / link)).read_bytes()).decode()
    return (
        f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def block_html(block: str, markdown_dir: Path) -> str:
    if heading := re.match(r"(#+) (.*)", block):
        level = len(heading[1])
        return f"<h{level}>{html.escape(heading[2])}</h{level}>"
    if block.startswith("|"):
        return table_html(block.splitlines())
    if block.startswith("!["):
        return figure_html(block, markdown_dir)
    return f"<p>{inline(block)}</p>"


def to_html(markdown: str, markdown_dir: Path, interactive: dict[str, str]) -> str:
    """One page from the Markdown (its first line the title); a paragraph that is a key of `interactive` gives
    way to that markup, which only a browser can show."""
    blocks = markdown.strip().split("\n\n")
    body = [interactive.get(b) or block_html(b, markdown_dir) for b in blocks]
    title = blocks[0].lstrip("# ")
    return environment().get_template("page.html.j2").render(title=title, body="\n".join(body))
