"""The paper's verdict rules, table-driven: each row is a case a reader can check by hand."""

import pytest

from vitheads import paper


@pytest.mark.parametrize(
    "paper_value, measured, ci, verdict",
    [
        (0.34, 0.30, [0.10, 0.50], "reproduced"),
        (0.34, 0.30, [-0.10, 0.50], "partly (consistent, but not distinguishable from zero)"),
        (0.34, 0.20, [0.15, 0.25], "partly (same order of magnitude)"),
        (0.11, 0.58, [0.15, 1.18], "not reproduced"),  # the default run's layers 1-3, zero ablation
        (0.34, -0.19, [-0.40, 0.02], "not reproduced"),
        (0.34, 1.10, [1.00, 1.20], "not reproduced"),  # more than 3x the paper's figure
    ],
)
def test_magnitude_verdict(paper_value, measured, ci, verdict):
    assert str(paper.magnitude_verdict(paper_value, measured, ci)) == verdict


@pytest.mark.parametrize(
    "ratio_ci, early_ci, middle_ci, verdict",
    [
        ([1.5, 4.0], [0.05, 0.2], [0.2, 0.5], "reproduced"),
        ([1.2, 2.0], [0.05, 0.2], [0.2, 0.5], "partly (layer 6 matters more, not threefold)"),
        (
            [-5.0, 9.0],
            [-0.1, 0.2],
            [0.2, 0.5],
            "partly (layer 6 matters; layers 1-3 indistinguishable from zero, so no ratio)",
        ),
        ([0.09, 1.61], [0.15, 1.18], [0.07, 0.34], "not reproduced"),  # the default run, zero ablation
    ],
)
def test_ratio_verdict(ratio_ci, early_ci, middle_ci, verdict):
    assert str(paper.ratio_verdict(ratio_ci, early_ci, middle_ci)) == verdict


@pytest.mark.parametrize(
    "count, total, elsewhere, verdict",
    [
        (0, 72, None, "not reproduced"),
        (1, 72, 3 / 72, "partly (present, but few)"),
        (20, 72, 0.05, "reproduced"),
        (20, 72, 0.5, "partly (present, but few)"),  # as common elsewhere: not specific to the band
        (0, 0, None, "not comparable (the model has no heads in these layers)"),
    ],
)
def test_count_verdict(count, total, elsewhere, verdict):
    assert str(paper.count_verdict(count, total, elsewhere)) == verdict


def test_claims_quote_the_paper_figures_once():
    assert "+0.11% (sd 0.09%)" in paper.CLAIMS[0].text and "+0.34% (sd 0.02%)" in paper.CLAIMS[1].text
    assert "within a factor of 3 of it" in paper.VERDICT_RULES


@pytest.mark.parametrize(
    "paper_value, measured, verdict",
    [
        (0.34, 0.30, "partly (same order of magnitude; one pass, no CI)"),
        (0.11, 0.0015, "not reproduced"),  # the author's protocol on the default model, layers 1-3
        (0.34, -0.025, "not reproduced"),
        (3.0, 9.5, "not reproduced"),
    ],
)
def test_point_verdict(paper_value, measured, verdict):
    assert str(paper.point_verdict(paper_value, measured)) == verdict


@pytest.mark.parametrize(
    "verdicts, verdict",
    [
        (["reproduced"] * 3, "reproduced"),
        (["partly (same order of magnitude)", "partly (consistent, but not distinguishable from zero)"], "partly"),
        (["reproduced", "not reproduced", "reproduced"], "no verdict (seeds disagree: 2 reproduced, 1 not reproduced)"),
        ([str(paper.NOT_COMPARABLE)] * 3, str(paper.NOT_COMPARABLE)),
        ([], str(paper.NOT_COMPARABLE)),
    ],
)
def test_seeds_verdict(verdicts, verdict):
    """Verdicts are values (kind, reason); the cases are written as the report prints them."""
    values = [paper.Verdict(*(v[:-1].split(" (", 1) if " (" in v else (v,))) for v in verdicts]
    assert str(paper.seeds_verdict(values)) == verdict


MEAN = {
    "early_layers_1_3_mean_pct": 0.17,
    "early_layers_1_3_ci_pct": [-0.12, 0.44],
    "layer_6_mean_pct": 0.33,
    "layer_6_ci_pct": [0.001, 0.69],
    "layer_6_over_early_ratio": 1.98,
    "layer_6_over_early_ratio_ci": [-18.0, 26.2],
}
AUTHOR = {"early_layers_1_3_mean_pct": 0.0015, "layer_6_mean_pct": -0.025, "layer_6_over_early_ratio": -16.3}


@pytest.mark.parametrize(
    "claim, protocol, ablate, value, verdict",
    [
        ("middle", "mean", {"mean": MEAN}, 0.33, "reproduced"),
        (
            "ratio",
            "mean",
            {"mean": MEAN},
            1.98,
            "partly (layer 6 matters; layers 1-3 indistinguishable from zero, so no ratio)",
        ),
        ("early", paper.AUTHOR, {paper.AUTHOR: AUTHOR}, 0.0015, "not reproduced"),
        ("ratio", paper.AUTHOR, {paper.AUTHOR: AUTHOR}, -16.3, "not reproduced"),
        ("middle", "zero", {"mean": MEAN}, None, str(paper.NOT_COMPARABLE)),  # the run has no zero ablation
        ("early", "mean", {"mean": {"early_layers_1_3_mean_pct": 0.1}}, None, str(paper.NOT_COMPARABLE)),  # no layer 6
    ],
)
def test_ablation_figures(claim, protocol, ablate, value, verdict):
    figure = paper.ablation_figures(ablate)[claim][protocol]
    assert (figure.value, str(figure.verdict)) == (value, verdict)
