"""ablate: the fast engine against a naive reference, and the invariants of a correct ablation."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TINY_MODEL, make_tiny_model

from vitheads.analysis.ablation import paper_comparison, summarise
from vitheads.analysis.stats import bootstrap_weights
from vitheads.interp.ablation import all_heads, sweep
from vitheads.model.vit import predict
from vitheads.names import TARGETS
from vitheads.params import read_yaml
from vitheads.records import Ablation

MODEL = {**TINY_MODEL, "depth": 4}
N_IMAGES = 10


@pytest.fixture
def setup():
    model = make_tiny_model(depth=MODEL["depth"])
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (N_IMAGES, 32, 32, 3), dtype=np.uint8)
    z_true = rng.standard_normal((N_IMAGES, 3)).astype(np.float32)
    return model, images, z_true


def naive_mse(model, images, z_true, layer, head, replacement):
    """One full forward per head, a hook written here, no shared work."""
    dh = MODEL["embed_dim"] // MODEL["num_heads"]

    def hook(module, args):
        z = args[0].clone()
        z[..., head * dh : (head + 1) * dh] = replacement
        return (z,)

    handle = model.blocks[layer].attn.proj.register_forward_pre_hook(hook)
    try:
        with torch.no_grad():
            return float(
                (
                    (model(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1) - torch.from_numpy(z_true))
                    ** 2
                ).mean()
            )
    finally:
        handle.remove()


def naive_means(model, images):
    """Per layer, the mean proj input over images per token position, captured directly."""
    captured = {}
    handles = [
        b.attn.proj.register_forward_pre_hook(lambda m, a, l=l: captured.__setitem__(l, a[0].mean(0)))
        for l, b in enumerate(model.blocks)
    ]
    with torch.no_grad():
        model(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1)
    for h in handles:
        h.remove()
    return captured


def test_fast_sweep_matches_the_naive_reference_and_touches_nothing(setup):
    model, images, z_true = setup
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    outputs = predict(model, images)
    ablations = all_heads(MODEL["depth"], MODEL["num_heads"], ["zero", "mean"])
    errors = sweep(model, images, z_true, ablations, batch_size=4, max_rows=12)  # uneven batches and groups

    means = naive_means(model, images)
    dh = MODEL["embed_dim"] // MODEL["num_heads"]
    for a in ablations:
        (h,) = a.heads
        replacement = 0.0 if a.mode == "zero" else means[a.layer][:, h * dh : (h + 1) * dh]
        expected = naive_mse(model, images, z_true, a.layer, h, replacement)
        assert errors.ablated[a].mean() == pytest.approx(expected, rel=1e-5), a
    assert errors.baseline.mean() == pytest.approx(float(((outputs - z_true) ** 2).mean()), rel=1e-6)

    for k, v in model.state_dict().items():
        assert torch.equal(v, weights[k]), k
    np.testing.assert_array_equal(predict(model, images), outputs)
    assert all(not b.attn.proj._forward_pre_hooks for b in model.blocks)


def test_head_with_zero_output_columns_changes_nothing(setup):
    model, images, z_true = setup
    dh = MODEL["embed_dim"] // MODEL["num_heads"]
    with torch.no_grad():
        model.blocks[2].attn.proj.weight[:, 1 * dh : 2 * dh] = 0
    dead = [Ablation(2, (1,), "zero"), Ablation(2, (1,), "mean")]
    errors = sweep(model, images, z_true, dead + [Ablation(2, (0,), "zero")], batch_size=5)
    for a in dead:
        np.testing.assert_allclose(errors.ablated[a], errors.baseline, rtol=1e-6, atol=1e-7)
    assert not np.allclose(errors.ablated[Ablation(2, (0,), "zero")], errors.baseline)


def test_zeroing_all_heads_of_a_layer_equals_removing_its_attention_branch(setup):
    model, images, z_true = setup
    with torch.no_grad():
        model.blocks[1].attn.proj.bias.zero_()  # else the branch would still add the bias
    errors = sweep(model, images, z_true, [Ablation(1, (0, 1, 2), "zero")], batch_size=5)

    handle = model.blocks[1].attn.register_forward_hook(lambda m, a, out: torch.zeros_like(out))
    try:
        without_branch = predict(model, images)
    finally:
        handle.remove()
    np.testing.assert_allclose(
        errors.ablated[Ablation(1, (0, 1, 2), "zero")], (without_branch - z_true) ** 2, rtol=1e-5, atol=1e-6
    )


def test_summary_and_bootstrap(setup):
    model, images, z_true = setup
    errors = sweep(model, images, z_true, all_heads(MODEL["depth"], MODEL["num_heads"], ["zero"]), batch_size=5)
    heads, boot = summarise(errors.baseline, errors.ablated, resamples=200, seed=0)
    assert (
        len(heads) == 12
        and list(heads["layer"].unique()) == [1, 2, 3, 4]
        and heads["head"].iloc[0] == 1
        and heads["head"].dtype.kind == "i"
    )
    manual = (
        errors.ablated[Ablation(0, (0,), "zero")].astype(float).mean() / errors.baseline.astype(float).mean() - 1
    ) * 100
    assert heads["increase_pct"].iloc[0] == pytest.approx(manual)
    assert (heads["ci_low_pct"] <= heads["increase_pct"] + 1e-9).all() and (
        heads["increase_pct"] <= heads["ci_high_pct"] + 1e-9
    ).all()
    assert heads.equals(summarise(errors.baseline, errors.ablated, resamples=200, seed=0)[0])  # seeded
    assert boot.shape == (200, 12)


def test_per_target_ci_matches_a_loop_over_resamples(setup):
    model, images, z_true = setup
    errors = sweep(model, images, z_true, all_heads(2, MODEL["num_heads"], ["zero"]), batch_size=5)
    heads, _ = summarise(errors.baseline, errors.ablated, resamples=100, seed=1)
    weights = bootstrap_weights(len(images), 100, 1)
    base = errors.baseline.astype(float)
    for i, key in enumerate(errors.ablated):
        ablated = errors.ablated[key].astype(float)
        for t, name in enumerate(TARGETS):
            increases = [(w @ ablated[:, t] / (w @ base[:, t]) - 1) * 100 for w in weights]
            expected = np.percentile(increases, [2.5, 97.5])
            assert [heads[f"ci_low_pct_{name}"].iloc[i], heads[f"ci_high_pct_{name}"].iloc[i]] == pytest.approx(
                expected
            )


def test_paper_comparison_needs_six_layers_and_brackets_its_means(setup):
    _, images, z_true = setup
    deep = make_tiny_model(depth=6)
    errors = sweep(deep, images, z_true, all_heads(6, 3, ["zero"]), batch_size=5)
    heads, boot = summarise(errors.baseline, errors.ablated, resamples=300, seed=0)
    c = paper_comparison(heads, boot, "zero")
    early, six = heads[heads["layer"] <= 3]["increase_pct"], heads[heads["layer"] == 6]["increase_pct"]
    assert c["early_layers_1_3_mean_pct"] == pytest.approx(early.mean(), abs=1e-5)
    assert c["layer_6_sd_pct"] == pytest.approx(six.std(), abs=1e-5)
    assert c["layer_6_over_early_ratio"] == pytest.approx(six.mean() / early.mean(), rel=1e-3)
    assert c["early_layers_1_3_ci_pct"][0] <= early.mean() <= c["early_layers_1_3_ci_pct"][1]
    six_boot = boot[:, (heads["mode"] == "zero").to_numpy() & (heads["layer"] == 6).to_numpy()].mean(1)
    assert c["layer_6_se_pct"] == pytest.approx(six_boot.std(ddof=1), abs=1e-5)  # the bootstrap's sd, not a width
    assert paper_comparison(heads[heads["layer"] <= 4], boot[:, :12], "zero") == {}


def test_ablate_stage_runs_under_dvc(reproduced_once):
    """The stage's outputs in the session's tiny run (conftest: ablate.bootstrap 50, author_images 5)."""
    project = reproduced_once
    assert read_yaml((project.path / "params.yaml").read_text())["ablate"]["author_images"] == 5
    author = pd.read_csv(project.path / "results/ablate/author_protocol.csv")
    assert len(author) == 2 * 3 and author["loss"].iloc[0] > 0
    heads = pd.read_csv(project.path / "results/ablate/heads.csv")
    assert len(heads) == 2 * 2 * 3  # modes x layers x heads of the tiny model
    assert {"layer", "head", "mode", "increase_pct", "ci_low_pct", "ci_high_pct", "increase_pct_Chirp_End_Freq"} <= set(
        heads.columns
    )
    metrics = json.loads((project.path / "metrics/ablate.json").read_text())
    assert set(metrics["zero"]) >= {"per_layer_mean_pct", "top_heads", "heads_ci_above_zero"}  # 2 layers: no layer 6
    assert metrics["author_protocol"] == {"images": 5}, (
        "no layer 6: only the image count (ablate.author_images of 8 test images)"
    )
    assert "sweep_seconds" not in metrics and "sweep_seconds" in json.loads(
        (project.path / "timings/ablate.json").read_text()
    )
