"""The run's report: one list of blocks rendered twice, as Markdown and as self-contained HTML.

Every number comes from the stages' metrics and results files; nothing is typed in here
except the paper's own figures, which come from vitheads.paper.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vitheads import paper

@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    text: str


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass
class Image:
    path: Path
    caption: str


@dataclass
class Interactive:
    """Markup that only the HTML page can show; the Markdown gets `note` in its place."""

    html: str
    note: str


def fmt(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}f}"


def figure_text(claim: str, f: paper.Figure) -> str:
    """A figure as the tables print it: a percentage, or a ratio for the ratio claim, with its CI."""
    if f.value is None:
        return "n/a"
    unit, sign = ("x", "") if claim == "ratio" else ("%", "+")
    ci = f" [{f.ci[0]:{sign}.3f}, {f.ci[1]:{sign}.3f}]" if f.ci else ""
    return f"{f.value:{sign}.3f}{unit}{ci}"


PAPER_FIGURE_TEXT = {
    "early": f"+{paper.EARLY_MEAN_PCT}% (sd {paper.EARLY_SD_PCT}% over heads)",
    "middle": f"+{paper.MIDDLE_MEAN_PCT}% (sd {paper.MIDDLE_SD_PCT}% over heads)",
    "ratio": f"about {paper.MIDDLE_OVER_EARLY:g}x",
}


def replication_table(ablate: dict[str, Any], classify: dict[str, Any], modes: list[str]) -> Table:
    """This run: each claim with the paper's figure (its protocol named), the author's protocol emulated on
    our model, our ablations with CIs over test images, and the verdict of the primary mode (mean first)."""
    modes = sorted(modes, key=list(paper.PROTOCOLS).index)
    figures = paper.ablation_figures(ablate)
    rows = [
        [claim.text, PAPER_FIGURE_TEXT[claim.key], figure_text(claim.key, figures[claim.key][paper.AUTHOR])]
        + [figure_text(claim.key, figures[claim.key][m]) for m in modes]
        + [figures[claim.key][modes[0]].verdict]
        for claim in paper.CLAIMS if claim.key in figures
    ]
    head_types = paper.head_type_figures(classify)
    totals = {"chirp_heads": classify["heads_layers_6_11"], "distractor_heads": classify["heads_layers_1_4"]}
    rows += [
        [claim.text, "judged by eye", "n/a"] + [f"{head_types[claim.key].value} of {totals[claim.key]} heads (head-roles rules)"]
        + ["" for _ in modes[1:]] + [head_types[claim.key].verdict]
        for claim in paper.CLAIMS if claim.key in head_types
    ]
    author = ablate.get(paper.AUTHOR)
    emulated = f"{author['images']} test images, one pass" if author else "not run: ablate.author_protocol is false"
    header = ["Claim (paper)", "Paper (author's code)", f"Author's code emulated on our model ({emulated})"]
    return Table(header + [f"Ours, {m} ablation [95% CI over test images]" for m in modes] + [f"Verdict ({modes[0]} ablation)"], rows)


def spread_text(s: dict[str, Any], claim: str) -> str:
    """Each seed's figure, then mean and sd over the seeds (head counts: whole numbers)."""
    if s["mean"] is None:
        return "n/a"
    counts = claim in ("chirp_heads", "distractor_heads")
    unit, digits = ("x", 2) if claim == "ratio" else ("", 0) if counts else ("%", 3)
    each = ", ".join("n/a" if v is None else f"{v:.{digits}f}" for v in s["values"])
    digits = max(digits, 1)
    sd = "" if s["sd"] is None else f", sd {s['sd']:.{digits}f}"
    return f"{each}{' heads' if counts else ''} (mean {s['mean']:.{digits}f}{unit}{sd})"


MODEL_NAMES = {"conv": "default (conv stem)", "patch": "pure ViT (patch stem)"}


def study_table(study: dict[str, Any]) -> Table:
    """The claims across training runs: per model, each seed's figure, the mean and sd over seeds,
    and a verdict only where the seeds agree."""
    models = study["models"]
    rows = []
    for claim in paper.CLAIMS:
        protocols = paper.PROTOCOLS.items() if claim.key in paper.FIGURE_KEYS else [("rules", "head-roles rules (label counts)")]
        for i, (proto, proto_name) in enumerate(protocols):
            cells = []
            for m in models.values():
                s = m["ablation"][claim.key][proto] if proto != "rules" else m["head_types"][claim.key]
                cells += [spread_text(s, claim.key), s["verdict"]]
            rows.append([claim.text if i == 0 else "", proto_name] + cells)
    header = ["Claim (paper)", "Protocol"]
    for stem, m in models.items():
        seeds = ", ".join(str(s) for s in m["seeds"])
        header += [f"{MODEL_NAMES.get(stem, stem)}: seeds {seeds}", "verdict across seeds"]
    return Table(header, rows)


def accuracy_across_seeds(study: dict[str, Any], targets: list[str]) -> str:
    parts = [
        f"{MODEL_NAMES.get(stem, stem)}: " + " / ".join(f"{m['r2'][t]['mean']:.3f} (sd {m['r2'][t]['sd']:.3f})" for t in targets)
        for stem, m in study["models"].items()
    ]
    return "Test R² per target (" + " / ".join(targets) + "), mean and sd over seeds: " + "; ".join(parts) + "."


def to_markdown(blocks: list, out_dir: Path) -> str:
    lines = []
    for b in blocks:
        if isinstance(b, Heading):
            lines += ["#" * b.level + " " + b.text, ""]
        elif isinstance(b, Paragraph):
            lines += [b.text, ""]
        elif isinstance(b, Table):
            lines += ["| " + " | ".join(b.header) + " |", "|" + "---|" * len(b.header)]
            lines += ["| " + " | ".join(row) + " |" for row in b.rows] + [""]
        elif isinstance(b, Image):
            rel = Path("..") / b.path if not b.path.is_absolute() else b.path
            lines += [f"![{b.caption}]({rel.as_posix()})", f"*{b.caption}*", ""]
        elif isinstance(b, Interactive):
            lines += [b.note, ""]
    return "\n".join(lines)


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.35em 0.6em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
figure { margin: 1em 0; } img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.88em; color: #555; }
"""


def _inline(text: str) -> str:
    """Escape, then the one Markdown mark the blocks use: *emphasis*."""
    parts = html.escape(text).split("*")
    return "".join(f"<em>{p}</em>" if i % 2 else p for i, p in enumerate(parts))


def to_html(blocks: list, title: str) -> str:
    """One file, figures embedded as data URIs: opens offline, mails as an attachment."""
    body = []
    for b in blocks:
        if isinstance(b, Heading):
            body.append(f"<h{b.level}>{html.escape(b.text)}</h{b.level}>")
        elif isinstance(b, Paragraph):
            body.append(f"<p>{_inline(b.text)}</p>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{html.escape(h)}</th>" for h in b.header)
            rows = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in b.rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif isinstance(b, Image):
            data = base64.b64encode(Path(b.path).read_bytes()).decode()
            body.append(
                f'<figure><img alt="{html.escape(b.caption)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{html.escape(b.caption)}</figcaption></figure>"
            )
        elif isinstance(b, Interactive):
            body.append(b.html)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
