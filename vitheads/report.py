"""The run's report: one list of blocks rendered twice, as Markdown and as self-contained HTML.

Every number comes from the stages' metrics and results files; nothing is typed in here
except the paper's own figures (arXiv 2503.18762), which are the claims being tested.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PAPER = {"early_mean": 0.11, "early_sd": 0.09, "six_mean": 0.34, "six_sd": 0.02, "ratio": 3.0}
MAGNITUDE_FACTOR = 3.0  # "partly": same order of magnitude, within this factor
DETECTOR_SHARE = 0.25  # "reproduced": at least this share of the layers' heads have the label


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


def fmt(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}f}"


def ci_text(ci: list[float], unit: str = "%") -> str:
    return f"[{ci[0]:+.3f}{unit}, {ci[1]:+.3f}{unit}]"


def magnitude_verdict(paper: float, measured: float, ci: list[float]) -> str:
    """Reproduced if our CI holds the paper's figure and excludes zero; partly if it holds both,
    or if our positive mean is within a factor of 3 of the paper's."""
    if ci[0] <= paper <= ci[1]:
        return "partly (consistent, but not distinguishable from zero)" if ci[0] <= 0 else "reproduced"
    if measured > 0 and paper / MAGNITUDE_FACTOR <= measured <= paper * MAGNITUDE_FACTOR:
        return "partly (same order of magnitude)"
    return "not reproduced"


def ratio_verdict(ratio_ci: list[float], early_ci: list[float], six_ci: list[float]) -> str:
    """Reproduced if the ratio's CI lies above 1 and holds 3; partly if layer 6 clearly matters more
    but not threefold, or matters while layers 1-3 do not measurably (no finite ratio)."""
    if ratio_ci[0] > 1:
        return "reproduced" if ratio_ci[0] <= PAPER["ratio"] <= ratio_ci[1] else "partly (layer 6 matters more, not threefold)"
    if early_ci[0] <= 0 <= early_ci[1] and six_ci[0] > 0:
        return "partly (layer 6 matters; layers 1-3 indistinguishable from zero, so no ratio)"
    return "not reproduced"


def count_verdict(count: int, total: int, elsewhere_rate: float | None = None) -> str:
    """Reproduced if >= 25% of the band's heads carry the label (and more often than elsewhere)."""
    rate = count / total if total else 0.0
    if count == 0:
        return "not reproduced"
    if rate >= DETECTOR_SHARE and (elsewhere_rate is None or rate > elsewhere_rate):
        return "reproduced"
    return "partly (present, but few)"


def replication_table(ablate: dict[str, Any], classify: dict[str, Any], mode: str) -> Table:
    m = ablate[mode]
    counts = classify["counts"]
    chirp_elsewhere = counts["all"]["monosemantic-chirp"] - classify["chirp_monosemantic_layers_6_11"]
    n_elsewhere = sum(counts["all"].values()) - classify["heads_layers_6_11"]
    rows = [
        [
            "Ablating one head of layers 1-3 raises the MSE by +0.11% (sd 0.09%)",
            f"{m['early_layers_1_3_mean_pct']:+.3f}% (sd {m['early_layers_1_3_sd_pct']:.3f}%)",
            ci_text(m["early_layers_1_3_ci_pct"]),
            magnitude_verdict(PAPER["early_mean"], m["early_layers_1_3_mean_pct"], m["early_layers_1_3_ci_pct"]),
        ],
        [
            "Ablating one head of layer 6 raises the MSE by +0.34% (sd 0.02%)",
            f"{m['layer_6_mean_pct']:+.3f}% (sd {m['layer_6_sd_pct']:.3f}%)",
            ci_text(m["layer_6_ci_pct"]),
            magnitude_verdict(PAPER["six_mean"], m["layer_6_mean_pct"], m["layer_6_ci_pct"]),
        ],
        [
            "Layer 6 heads matter about threefold more than layers 1-3",
            f"{m['layer_6_over_early_ratio']:.2f}x",
            ci_text(m["layer_6_over_early_ratio_ci"], "x").replace("+", ""),
            ratio_verdict(m["layer_6_over_early_ratio_ci"], m["early_layers_1_3_ci_pct"], m["layer_6_ci_pct"]),
        ],
        [
            "Layers 6-11 hold monosemantic chirp-tracking heads",
            f"{classify['chirp_monosemantic_layers_6_11']} of {classify['heads_layers_6_11']} heads "
            f"(elsewhere {chirp_elsewhere} of {n_elsewhere})",
            "",
            count_verdict(classify["chirp_monosemantic_layers_6_11"], classify["heads_layers_6_11"], chirp_elsewhere / max(1, n_elsewhere)),
        ],
        [
            "Early heads (layers 1-4) are monosemantic but task-irrelevant: text, edge or corner detectors",
            f"{classify['distractor_detectors_layers_1_4']} of {classify['heads_layers_1_4']} heads monosemantic on a "
            f"distractor ({classify['text_or_frame_detectors_layers_1_4']} on text or frame, the rest on the colorbar)",
            "",
            count_verdict(classify["distractor_detectors_layers_1_4"], classify["heads_layers_1_4"]),
        ],
    ]
    return Table(["Claim (paper)", f"Measured ({mode} ablation)", "95% CI (bootstrap over images)", "Verdict"], rows)


def verdict_rules() -> Paragraph:
    return Paragraph(
        "Verdicts: an ablation figure is *reproduced* when our 95% CI holds the paper's value and excludes zero, "
        f"*partly* when it holds both, or when our mean is positive and within a factor of {MAGNITUDE_FACTOR:g} of it. "
        "The ratio is *reproduced* when its CI lies above 1 and holds 3, *partly* when it lies above 1, or when "
        "layer 6's CI lies above zero while that of layers 1-3 holds zero. A head-type claim is *reproduced* when at least "
        f"{DETECTOR_SHARE:.0%} of the band's heads carry the label (for the chirp heads: also more often than in the "
        "other layers), *partly* when some do. Head labels follow the rule in the README."
    )


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
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
