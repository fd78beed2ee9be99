"""The route analysis: routes add up, claims follow the equivalence bound of paper.py, the ruler test reads a
slope it was given."""

from types import SimpleNamespace

import numpy as np
import pytest

from vitheads import paper
from vitheads.analysis import decomposition as d
from vitheads.analysis.stats import bootstrap_weights

DEPTH, HEADS, T = 2, 3, 3
K = 1 + DEPTH * (HEADS + 1)
TARGETS = ("start_time", "start_frequency", "end_frequency")


def measures(change: np.ndarray, seed: int = 0) -> SimpleNamespace:
    """Measures of n pairs whose change is split evenly over the components, half at the changed tokens."""
    split = np.repeat((change / (2 * K))[:, None, None, None, :], 2, 1).repeat(K, 2).repeat(2, 3)  # [n, 2, K, 2, T]
    split[:, :, 0, 1] = 0  # the embedding changes only at the changed tokens
    split[:, :, 0, 0] = change[:, None] / K
    return SimpleNamespace(
        prediction_change=change,
        route_changes=split,
        frozen_attention_change=3 * change,
        resampled_change=change,
        resampled_route_changes=split,
    )


def test_the_routes_add_up_to_the_whole_and_layers_to_their_route():
    rng = np.random.default_rng(0)
    change = rng.normal(0.05, 0.01, (40, T))
    routes = d.routes_of(measures(change).route_changes.mean(1), DEPTH)
    total = sum(routes[name] for name in (*d.ROUTES, "embedding_at_other"))
    np.testing.assert_allclose(total, change, atol=1e-12)
    np.testing.assert_allclose(routes["moved L1"] + routes["moved L2"], routes["moved"], atol=1e-12)
    np.testing.assert_allclose(sum(routes[f"moved L2H{h}"] for h in (1, 2, 3)), routes["moved L2"], atol=1e-12)
    with pytest.raises(ValueError, match="do not fit"):
        d.layout(K + 1, DEPTH)


def test_claims_follow_the_equivalence_bound_read_from_the_paper(monkeypatch):
    rng = np.random.default_rng(1)
    weights = bootstrap_weights(60, 400, 0)
    big = d.element_claims("frame_grey", measures(rng.normal(0.05, 0.01, (60, T))), weights, 6, DEPTH, TARGETS)
    tiny = d.element_claims("frame_grey", measures(rng.normal(0, 0.001, (60, T))), weights, 6, DEPTH, TARGETS)
    assert {big[t]["claim"] for t in TARGETS} == {"changes the output"}
    assert {tiny[t]["claim"] for t in TARGETS} == {"insensitive"}
    assert tiny["equivalence_bound_z"] == round(paper.ELEMENT_EQUIVALENCE_Z, 5)
    assert tiny["start_time"]["abs_change_simultaneous"][1] < paper.ELEMENT_EQUIVALENCE_Z
    monkeypatch.setattr(d, "ELEMENT_EQUIVALENCE_Z", 1e-5)  # a bound below what the bootstrap can exclude
    stricter = d.element_claims("frame_grey", measures(rng.normal(0, 0.001, (60, T))), weights, 6, DEPTH, TARGETS)
    assert "insensitive" not in {stricter[t]["claim"] for t in TARGETS}


def test_a_simultaneous_bound_is_wider_than_a_single_one():
    change = np.random.default_rng(2).normal(0, 0.01, (50, T))
    weights = bootstrap_weights(50, 1000, 0)
    one, many = (d.simultaneous_interval(np.abs(change), weights, cells) for cells in (1, 30))
    assert (many[1] > one[1]).all() and (many[0] < one[0]).all()


def test_the_ruler_test_reads_the_slope_of_the_change_on_the_truth():
    rng = np.random.default_rng(3)
    truth = rng.normal(0, 1, (80, T))
    weights = bootstrap_weights(80, 400, 0)
    ruler = d.ruler_test(
        SimpleNamespace(prediction_change=0.2 * truth + rng.normal(0, 0.01, (80, T))), truth, weights, TARGETS
    )
    assert all(ruler[t]["shifts_predictions"] for t in TARGETS)
    assert ruler["start_time"]["slope_on_truth_ci"][0] < 0.2 < ruler["start_time"]["slope_on_truth_ci"][1]
    axis = truth[:, 0].max() - truth[:, 0].min()
    assert ruler["start_time"]["shift_share_of_axis"] == pytest.approx(
        abs(ruler["start_time"]["change"]) / axis, abs=1e-4
    )
    flat = d.ruler_test(SimpleNamespace(prediction_change=np.zeros((80, T))), truth, weights, TARGETS)
    assert not any(flat[t]["shifts_predictions"] for t in TARGETS)


def planted_pair():
    """A planted tiny model (its cue tokens read only by designated heads, the readout reads none of them) and
    two passes that differ only in the text cue's token embeddings."""
    import torch
    from conftest import make_tiny_model

    from vitheads.interp.cache import run_with_cache
    from vitheads.interp.decompose import POINTS
    from vitheads.interp.hooked import HookedViT
    from vitheads.model.planted import plant
    from vitheads.model.vit import to_input

    model = plant(make_tiny_model(depth=4), {"text": [14, 15]}).eval()
    hooked = HookedViT(model)
    x = to_input(np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8))
    changed = torch.zeros(3, 17, dtype=torch.bool)
    changed[:, [15, 16]] = True
    bump = {"blocks.0.hook_resid_pre": lambda h: h + torch.randn_like(h) * changed[..., None]}
    with torch.inference_mode():
        a = run_with_cache(hooked, x, POINTS)
        b = run_with_cache(hooked, x, POINTS, hooks=bump)
    return model, hooked, a, b, changed


def test_the_route_split_puts_a_planted_cue_on_its_designated_heads():
    """Nothing is read where the cue is (the readout is masked there), and in the first layer only the
    designated heads move it: the split finds what the construction guarantees and nothing else."""
    import torch

    from vitheads.data.cues import designated_heads
    from vitheads.interp.decompose import route_changes

    _, hooked, a, b, changed = planted_pair()
    with torch.inference_mode():
        split = route_changes(hooked, a, b, changed).numpy()  # [B, 2, K, 2, T]
    routes = d.routes_of(split.mean(1), 4)
    whole = (b.output - a.output).numpy()
    assert np.abs(whole).mean() > 1e-3
    assert np.abs(routes["stay"]).max() < 1e-7 and np.abs(routes["attention_at_changed"]).max() < 1e-7
    np.testing.assert_allclose(routes["moved"] + routes["mlp_on_moved"], whole, atol=1e-6)
    first = min(layer for layer, head in designated_heads(["text"])["text"] if head < 3)
    carriers = {h for h in range(3) if np.abs(routes[f"moved L{first + 1}H{h + 1}"]).max() > 1e-7}
    assert carriers == {h for layer, h in designated_heads(["text"])["text"] if layer == first and h < 3}


def test_the_route_split_puts_a_direct_implant_on_the_stay_route():
    """An implant on the direct route: the readout made to read the changed tokens' stream. The change it adds
    lands on the stay route (the embedding read where it is), on no head."""
    import torch

    from vitheads.interp.decompose import route_changes

    model, hooked, a, b, changed = planted_pair()
    with torch.inference_mode():
        before = d.routes_of(route_changes(hooked, a, b, changed).numpy().mean(1), 4)
        model.readout_keep[[14, 15]] = 1  # the readout now reads the cue tokens too
        after = d.routes_of(route_changes(hooked, a, b, changed).numpy().mean(1), 4)
    added = {name: after[name] - before[name] for name in after}
    assert np.abs(added["stay"]).mean() > 1e-3
    heads = [name for name in added if name.startswith("moved L") and "H" in name]
    assert max(np.abs(added[name]).max() for name in heads) < 1e-7


def test_routes_pool_over_runs_with_the_run_as_unit():
    """Three runs' route means pooled (both estimators): the pooled change sits among the runs', the interval
    is over runs (k = 3), and an element some run lacks is left out."""
    from vitheads.study.summaries import pooled_routes

    def run(shift: float, extra: bool = False) -> dict:
        cell = {"claim": "changes the output", "change": 0.05 + shift, "change_se": 0.005}
        cell |= {f"route_{r}": 0.01 + shift for r in d.ROUTES} | {f"route_{r}_se": 0.002 for r in d.ROUTES}
        out = {"frame_grey": {"distractor": "frame", "start_time": cell}}
        return out | ({"title_text": out["frame_grey"]} if extra else {})

    pooled = pooled_routes([run(0.0, True), run(0.01), run(-0.01)])
    assert set(pooled) == {"frame_grey"}
    change = pooled["frame_grey"]["start_time"]["change"]
    for estimator in ("dl", "reml"):
        assert change[estimator]["k"] == 3 and abs(change[estimator]["estimate"] - 0.05) < 1e-9
        assert change[estimator]["ci"][0] < 0.04 and change[estimator]["ci"][1] > 0.06  # the runs' spread
    assert pooled["frame_grey"]["start_time"]["claims"] == ["changes the output"] * 3
    assert pooled_routes([run(0.0)]) == {}


def test_the_routes_figure_draws_every_element_on_one_scale(tmp_path):
    import matplotlib.image
    import pandas as pd

    from vitheads.report.routes import routes_figure

    rng = np.random.default_rng(4)
    weights = bootstrap_weights(30, 200, 0)
    rows = []
    for variant, size in (("title_text", 0.001), ("frame_grey", 0.06)):
        m = measures(rng.normal(size, size / 5, (30, T)))
        rows += d.decomposition_rows(variant, m, weights, DEPTH, TARGETS)
    table = pd.DataFrame(rows)
    assert set(table["route"]) >= {"whole", *d.ROUTES, "moved L1", "moved L2H3"}
    routes_figure(table, tmp_path / "routes.png")
    image = matplotlib.image.imread(tmp_path / "routes.png")
    assert image.shape[1] > 1000 and image.shape[0] > 200


def test_the_routes_study_pools_the_pure_vits_runs_and_scores_the_split_on_the_planted_heads():
    from vitheads.analysis.benchmark import DECOMPOSITION, RULE
    from vitheads.study.summaries import routes

    def patch_run(seed: int, shift: float) -> dict:
        cell = {"claim": "changes the output", "change": 0.05 + shift, "change_se": 0.005}
        causal = {"decomposition": {"frame_grey": {"distractor": "frame", "start_time": cell}}, "frame_ruler": {}}
        return {"name": f"routes-patch-{seed}", "arm": "patch", "seed": seed, "metrics": {"causal": causal}}

    hit = {"designated_flagged": 2, "others_flagged": 0}
    planted = {"text": {"designated": ["L2H2", "L2H7"], "methods": {RULE: hit, DECOMPOSITION: hit, "other": hit}}}
    runs = [patch_run(1, 0.0), patch_run(2, 0.01)]
    runs.append({"name": "routes-planted-1", "arm": "planted", "seed": 1, "metrics": {"causal": {"planted": planted}}})
    out = routes(runs)
    assert out["patch_routes"]["frame_grey"]["start_time"]["change"]["dl"]["k"] == 2
    assert set(out["patch_ruler"]) == {"1", "2"}
    assert out["planted"]["routes-planted-1"]["text"] == {RULE: hit, DECOMPOSITION: hit, "designated": ["L2H2", "L2H7"]}


def test_the_routes_section_shows_routes_pooled_over_runs_once_two_runs_have_them():
    from pathlib import Path

    from vitheads.report.render import render
    from vitheads.report.sections import pooled_routes as section_pooled
    from vitheads.study.summaries import pooled_routes

    def run(shift: float) -> dict:
        cell = {"claim": "changes the output", "change": 0.05 + shift, "change_se": 0.005}
        cell |= {f"route_{r}": 0.01 + shift for r in d.ROUTES} | {f"route_{r}_se": 0.002 for r in d.ROUTES}
        return {"frame_grey": {"distractor": "frame", "Chirp_Start_Time": cell}}

    claims = {"frame_grey": {"distractor": "frame", "Chirp_Start_Time": run(0.0)["frame_grey"]["Chirp_Start_Time"]}}
    claims["frame_grey"]["Chirp_Start_Time"] |= {
        "change_simultaneous": [0.04, 0.06], "abs_change": 0.05, "abs_change_simultaneous": [0.04, 0.06],
        "frozen_attention_change": 0.1,
    }  # fmt: skip

    def gathered(arm: str, decomposition: dict | None) -> dict:  # a run as the study file holds it
        return {"arm": arm, "metrics": {"causal": {"decomposition": decomposition} if decomposition else {}}}

    two = {"runs": [gathered("a", run(0.0)), gathered("a", run(0.01)), gathered("b", run(0.0))]}
    two["summary"] = {"routes_all_on": pooled_routes([run(0.0), run(0.01)])}
    one = {"runs": [gathered("v", run(0.0)), gathered("v", None)], "summary": {"patch_routes": {}}}
    data = {
        "claims": claims, "targets": ["Chirp_Start_Time"], "bound": 0.0088, "ruler": None, "table": "t.csv",
        "figure": None, "cls_note": "", "power": None,
        "over_runs": {
            "default": section_pooled(two, "routes_all_on", "a"), "vit": section_pooled(one, "patch_routes", "v"),
        },
    }  # fmt: skip
    text = render("routes.md.j2", Path(__file__).resolve().parents[1] / "templates/report", s=data)
    assert "**Over training runs: default**, 2 runs" in text
    assert "| frame_grey | Chirp_Start_Time | +0.0550 [" in text  # the pooled whole change of the two runs
    assert "Over training runs, vit: 1 run(s) with the route split so far" in text  # the other predates it
