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


def ci_text(ci: list[float], unit: str = "%") -> str:
    return f"[{ci[0]:+.3f}{unit}, {ci[1]:+.3f}{unit}]"


def ablation_rows(m: dict[str, Any]) -> list[list[str]]:
    """The three ablation claims against one mode's metrics (empty: the model has no layer 6)."""
    if "layer_6_mean_pct" not in m:
        return []
    return [
        [
            paper.CLAIMS[0].text,
            f"{m['early_layers_1_3_mean_pct']:+.3f}% (sd {m['early_layers_1_3_sd_pct']:.3f}%)",
            ci_text(m["early_layers_1_3_ci_pct"]),
            paper.magnitude_verdict(paper.EARLY_MEAN_PCT, m["early_layers_1_3_mean_pct"], m["early_layers_1_3_ci_pct"]),
        ],
        [
            paper.CLAIMS[1].text,
            f"{m['layer_6_mean_pct']:+.3f}% (sd {m['layer_6_sd_pct']:.3f}%)",
            ci_text(m["layer_6_ci_pct"]),
            paper.magnitude_verdict(paper.MIDDLE_MEAN_PCT, m["layer_6_mean_pct"], m["layer_6_ci_pct"]),
        ],
        [
            paper.CLAIMS[2].text,
            f"{m['layer_6_over_early_ratio']:.2f}x",
            ci_text(m["layer_6_over_early_ratio_ci"], "x").replace("+", ""),
            paper.ratio_verdict(m["layer_6_over_early_ratio_ci"], m["early_layers_1_3_ci_pct"], m["layer_6_ci_pct"]),
        ],
    ]


def head_type_rows(classify: dict[str, Any]) -> list[list[str]]:
    chirp, chirp_total = classify["chirp_heads_layers_6_11"], classify["heads_layers_6_11"]
    n_all = sum(classify["counts"]["all"].values())
    chirp_elsewhere = classify["chirp_heads_all"] - chirp
    elsewhere_rate = chirp_elsewhere / max(1, n_all - chirp_total)
    return [
        [
            paper.CLAIMS[3].text,
            f"{chirp} of {chirp_total} heads (elsewhere {chirp_elsewhere} of {n_all - chirp_total})",
            "",
            paper.count_verdict(chirp, chirp_total, elsewhere_rate),
        ],
        [
            paper.CLAIMS[4].text,
            f"{classify['distractor_heads_layers_1_4']} of {classify['heads_layers_1_4']} heads attend to plot furniture "
            f"({classify['text_or_frame_heads_layers_1_4']} on text or frame); positional: whether they detect it needs "
            "an intervention",
            "",
            paper.count_verdict(classify["distractor_heads_layers_1_4"], classify["heads_layers_1_4"]),
        ],
    ]


def replication_table(ablate: dict[str, Any], classify: dict[str, Any], mode: str) -> Table:
    rows = ablation_rows(ablate[mode]) + head_type_rows(classify)
    return Table(["Claim (paper)", f"Measured ({mode} ablation)", "95% CI (bootstrap over images)", "Verdict"], rows)


def mean_sd(m: dict[str, Any], key: str) -> str:
    return f"{m[f'{key}_mean_pct']:+.3f}% (sd {m[f'{key}_sd_pct']:.3f}%)"


def protocol_table(ablate: dict[str, Any], modes: list[str]) -> Table:
    """The paper's ablation figures beside the same figures under the author's protocol emulated on our
    model and under our per-head ablations: which pattern comes from the model, which from the protocol."""
    author = ablate["author_protocol"]
    rows = [
        ["layers 1-3, per head", f"+{paper.EARLY_MEAN_PCT}% (sd {paper.EARLY_SD_PCT}%)", mean_sd(author, "early_layers_1_3")]
        + [f"{mean_sd(ablate[m], 'early_layers_1_3')} {ci_text(ablate[m]['early_layers_1_3_ci_pct'])}" for m in modes],
        [f"layer {paper.MIDDLE_LAYER}, per head", f"+{paper.MIDDLE_MEAN_PCT}% (sd {paper.MIDDLE_SD_PCT}%)", mean_sd(author, "layer_6")]
        + [f"{mean_sd(ablate[m], 'layer_6')} {ci_text(ablate[m]['layer_6_ci_pct'])}" for m in modes],
        [f"layer {paper.MIDDLE_LAYER} / layers 1-3", f"about {paper.MIDDLE_OVER_EARLY:.0f}x", f"{author['layer_6_over_early_ratio']:.2f}x"]
        + [f"{ablate[m]['layer_6_over_early_ratio']:.2f}x {ci_text(ablate[m]['layer_6_over_early_ratio_ci'], 'x').replace('+', '')}" for m in modes],
        ["the last head of the sweep", "not reported", f"{author['last_head_increase_pct']:+.3f}% (all heads' rows zeroed by then)"]
        + ["" for _ in modes],
    ]
    header = ["MSE increase", "Paper (author's code)", f"Author's protocol on our model ({author['images']} test images)"]
    return Table(header + [f"Ours, {m} ablation [95% CI]" for m in modes], rows)


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
