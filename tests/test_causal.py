"""Causal evidence from paired renders: what a silent head can and cannot show, and the head rule."""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_tiny_model

from vitheads.analysis.causal import head_evidence, task_relevant_detail
from vitheads.data.furniture import Distortions
from vitheads.data.pairs import PairRenderer, render_pairs
from vitheads.data.variants import variant_spec
from vitheads.interp.causal import measure_variant
from vitheads.names import TARGETS

SIZE, PATCH, N = 64, 16, 4
SILENT = (1, 0)  # layer, head whose values are zero: it outputs zero at every token


@pytest.fixture(scope="module")
def measured():
    model = make_tiny_model(image_size=SIZE, patch_size=PATCH, depth=2, num_heads=2, embed_dim=16)
    dim, head_dim = 16, 8
    layer, head = SILENT
    with torch.no_grad():
        rows = slice(2 * dim + head * head_dim, 2 * dim + (head + 1) * head_dim)
        model.blocks[layer].attn.qkv.weight[rows] = 0
        model.blocks[layer].attn.qkv.bias[rows] = 0
    renderer = PairRenderer(SIZE, Distortions())
    z_true = np.random.default_rng(0).standard_normal((N, 3)).astype(np.float32)
    return {
        v: measure_variant(model, render_pairs(v, 1, PATCH, N, renderer), z_true, 2, N if v == "title_text" else 0)
        for v in ("title_text", "title_moved", "colorbar_moved", "frame_moved")
    }


def test_a_head_that_outputs_zero_is_never_sensitive_and_patching_it_changes_nothing(measured):
    m = measured["title_text"]
    layer, head = SILENT
    assert m.sensitivity_element[:, layer, head].max() == 0 and m.sensitivity_elsewhere[:, layer, head].max() == 0
    assert m.patch_prediction_change[:, layer, head].max() == 0
    assert m.sensitivity_element[:, 0].max() > 0  # the others see the title change
    assert m.patch_prediction_change.shape[-2:] == (2, 3)  # each direction, each target
    assert (m.patch_prediction_change[:, 0].max((0, 1, 3)) > 0).all()  # the others change predictions, both ways


def test_follow_is_measured_for_moved_elements_only(measured):
    assert measured["title_text"].follow is None
    for moved in ("title_moved", "colorbar_moved", "frame_moved"):
        assert measured[moved].follow.shape == (N, 2, 2) and np.isfinite(measured[moved].follow).all()


def test_moved_elements_are_scored_where_they_went():
    renderer = PairRenderer(SIZE, Distortions())
    grid = SIZE // PATCH
    frame = render_pairs("frame_moved", 1, PATCH, 2, renderer)
    old, new = frame.old.reshape(-1, grid, grid), frame.new.reshape(-1, grid, grid)
    # Below the top row only the right spine reaches new patches (the colorbar's outline, frame ink in
    # both members, shares its column); above the bottom row only the left spine leaves old ones.
    assert new[:, 1:].any((1, 2)).all() and old[:, :-1].any((1, 2)).all()
    assert new[:, 0].any(1).all() and old[:, -1].any(1).all()  # the top and bottom spines
    for moved in ("title_moved", "colorbar_moved"):
        pairs = render_pairs(moved, 1, PATCH, 2, renderer)
        assert pairs.old.any(1).all() and pairs.new.any(1).all()


def rows(variant, **columns):
    base = {"variant": variant, "layer": [1, 1], "head": [1, 2]}
    return pd.DataFrame({**base, **columns})


RULE = {"min_response": 0.1, "min_follow": 1.0, "min_prediction_change": 0.01, "relative_change": 0.1, "fdr": 0.05}
SURE, NO = 1e-6, 0.9  # p-values: a clear discovery, and nothing
PATCHED = {f"patch_prediction_change_{t}_p": [NO, NO] for t in TARGETS}


@pytest.mark.parametrize("content, moved", [("title_text", "title_moved"), ("colorbar_colormap", "colorbar_moved")])
@pytest.mark.parametrize(
    "read_p, follow_p, start_time_p, detector, relevant",
    [
        ([SURE, SURE], [SURE, NO], [NO, NO], [True, False], [False, False]),  # only the head that follows detects
        ([NO, SURE], [SURE, SURE], [SURE, NO], [False, True], [True, False]),  # reads nothing, but it matters
        ([0.06, SURE], [SURE, SURE], [NO, NO], [False, True], [False, False]),  # 0.06: no discovery at 0.05
    ],
)
def test_head_rule(content, moved, read_p, follow_p, start_time_p, detector, relevant):
    patched = PATCHED | {"patch_prediction_change_Chirp_Start_Time_p": start_time_p}
    table = pd.concat(
        [
            rows(content, sensitivity_element_p=[NO, NO], kv_read_p=read_p, **patched),
            rows(moved, sensitivity_element_p=[NO, NO], follow_p=follow_p),
        ]
    )
    evidence = head_evidence(table, RULE)
    kind = variant_spec(content).kind
    assert evidence[f"{kind}_detector"].tolist() == detector
    assert evidence["task_relevant"].tolist() == relevant


def test_the_correction_runs_over_every_head_variant_and_target_a_label_tests():
    """p = 0.02 passes Benjamini-Hochberg at 0.05 on its own (one test), not among 3 targets x 2 heads of
    nulls (0.02 > 0.05 x 1 / 6)."""
    alone = rows("title_text", sensitivity_element_p=[0.02, NO])
    assert head_evidence(alone, RULE)["responds_text"].tolist() == [True, False]
    crowd = rows(
        "title_text",
        sensitivity_element_p=[NO, NO],
        **(PATCHED | {"patch_prediction_change_Chirp_End_Freq_p": [0.02, NO]}),
    )
    assert head_evidence(crowd, RULE)["changes_predictions_text"].tolist() == [False, False]


def test_the_frame_responds_to_its_grey_ink_and_any_response_variant_counts():
    table = pd.concat(
        [
            rows("title_text", sensitivity_element_p=[SURE, NO]),
            rows("tick_labels_text", sensitivity_element_p=[NO, SURE]),
            rows("title_blank", sensitivity_element_p=[NO, NO]),
            rows("frame_grey", sensitivity_element_p=[SURE, NO]),
            rows("frame_blank", sensitivity_element_p=[NO, SURE]),  # blanking is no response variant once grey exists
        ]
    )
    evidence = head_evidence(table, RULE)
    assert evidence["responds_text"].tolist() == [True, True]
    assert evidence["responds_frame"].tolist() == [True, False]
    assert not evidence["follows_frame"].any() and not evidence["frame_detector"].any()  # nothing moved: no detector


def test_a_run_with_every_element_off_has_only_controls_and_no_task_relevant_head():
    """With every distractor off only the blob control runs, and no variant is patched: the metrics say no head
    is task-relevant instead of failing on the missing patching columns (the all-off arms of the distortion
    study failed there)."""
    table = rows("blob", sensitivity_element_p=[SURE, NO], follow=[1.5, 0.0], follow_p=[SURE, NO])
    evidence = head_evidence(table, RULE)
    assert not evidence["task_relevant"].any()
    assert task_relevant_detail(table, evidence) == {}
