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
    assert paper.magnitude_verdict(paper_value, measured, ci) == verdict


@pytest.mark.parametrize(
    "ratio_ci, early_ci, middle_ci, verdict",
    [
        ([1.5, 4.0], [0.05, 0.2], [0.2, 0.5], "reproduced"),
        ([1.2, 2.0], [0.05, 0.2], [0.2, 0.5], "partly (layer 6 matters more, not threefold)"),
        ([-5.0, 9.0], [-0.1, 0.2], [0.2, 0.5], "partly (layer 6 matters; layers 1-3 indistinguishable from zero, so no ratio)"),
        ([0.09, 1.61], [0.15, 1.18], [0.07, 0.34], "not reproduced"),  # the default run, zero ablation
    ],
)
def test_ratio_verdict(ratio_ci, early_ci, middle_ci, verdict):
    assert paper.ratio_verdict(ratio_ci, early_ci, middle_ci) == verdict


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
    assert paper.count_verdict(count, total, elsewhere) == verdict


def test_claims_quote_the_paper_figures_once():
    assert "+0.11% (sd 0.09%)" in paper.CLAIMS[0].text and "+0.34% (sd 0.02%)" in paper.CLAIMS[1].text
    assert "within a factor of 3 of it" in paper.VERDICT_RULES
