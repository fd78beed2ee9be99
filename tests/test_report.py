"""The report's templates: a value the data lacks stops the report, naming it; the Markdown the templates
write becomes the same page in HTML."""

from pathlib import Path

import jinja2
import pytest

from vitheads.report.render import render, tidy, to_html

TEMPLATES = Path(__file__).resolve().parents[1] / "templates/report"
MODEL = {
    "image_size": 128,
    "depth": 12,
    "num_heads": 12,
    "embed_dim": 96,
    "patch_size": 16,
    "stem": "conv",
    "pooling": "flatten",
    "init": "scratch",
}
RUN = {"on": ["title"], "generate": {"n_train": 10, "n_test": 5}, "seed": 7, "model": MODEL, "method": "full"}


def test_a_template_renders_its_data_and_fails_naming_a_missing_value():
    text = render("run.md.j2", folder=TEMPLATES, s=RUN)
    assert text.startswith("Distortions on: title. Data: 10 train and 5 test images at 128 px, seed 7.\n\nModel:")
    with pytest.raises(jinja2.UndefinedError, match="'seed'"):
        render("run.md.j2", folder=TEMPLATES, s={k: v for k, v in RUN.items() if k != "seed"})


def test_the_page_shows_the_markdowns_blocks(tmp_path):
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots/a.png").write_bytes(b"\x89PNG")
    markdown = tidy(
        "# Title\n\nA paragraph\nwrapped, with *emphasis* and **strong**.\n\n\n| a | mean \\|x\\| |\n|---|---|\n"
        "| 1 | 2 |\n\n![cap](../plots/a.png)\n*cap*\n\nthe note\n"
    )
    assert "A paragraph wrapped, with" in markdown and "\n\n\n" not in markdown
    page = to_html(markdown, tmp_path / "report", {"the note": "<section>live</section>"})
    assert "<title>Title</title>" in page and "<h1>Title</h1>" in page
    assert "<em>emphasis</em> and <strong>strong</strong>" in page
    assert "<th>mean |x|</th></tr></thead><tbody><tr><td>1</td><td>2</td></tr>" in page
    assert '<img alt="cap" src="data:image/png;base64,iVBORw==">' in page
    assert "<section>live</section>" in page and "the note" not in page
    with pytest.raises(ValueError, match="does not have 2 cells"):
        to_html("| a | b |\n|---|---|\n| 1 | 2 | 3 |\n", tmp_path, {})


def forest_panel(unit: str, value: float, prediction: list[float] | None) -> dict:
    seeds = [{"label": str(s), "value": value + s, "low": value + s - 1, "high": value + s + 1} for s in (1, 2, 3)]
    pooled = {"estimate": value + 2, "ci": [value, value + 4], "prediction": prediction}
    return {"title": unit, "unit": unit, "seeds": seeds, "pooled": pooled, "paper": (0.1, 0.05), "held_out": []}


def test_forest_panels_in_one_unit_share_one_scale_and_show_a_next_run_only_where_predicted():
    from vitheads.report import figures

    panels = [forest_panel("%", 0, None), forest_panel("%", 10, [5.0, 20.0]), forest_panel("points", -50, None)]
    limits = figures.forest_limits(panels)
    assert -5 < limits["%"][0] < 0 < 20 < limits["%"][1] and limits["points"][0] < -49
    figure = figures.new_figure(6, 3)
    for ax, panel in zip(figure.subplots(1, 3), panels):
        figures.forest_panel(ax, panel, limits[panel["unit"]])
    left, middle, right = figure.axes
    assert left.get_xlim() == middle.get_xlim() != right.get_xlim()
    assert [t.get_text() for t in left.get_yticklabels()] == ["1", "2", "3", "pooled"]
    assert [t.get_text() for t in middle.get_yticklabels()][-1] == "next run"
