"""attention and classify: captured patterns are real softmax rows; the taxonomy reads the masks."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from vitheads import params
from vitheads.analysis.attention import auroc, derangement, excess_share, head_table, region_scores, scores_arrays
from vitheads.analysis.taxonomy import label_all, region_stats, wide
from vitheads.data.chirps import sample_chirp, spectrogram
from vitheads.data.furniture import Distortions
from vitheads.data.regions import patch_fractions, region_indicators
from vitheads.data.rendering import PlotRenderer, title_for
from vitheads.interp.attention import entropy, grid_distances, mean_distance, patterns, views
from vitheads.interp.hooked import HookedViT
from vitheads.model.vit import to_input
from vitheads.names import CLASSES
from vitheads.params import ParamsError

ROOT = Path(__file__).resolve().parents[1]


def test_captured_attention_is_softmax_of_q_and_k(tiny_model):
    model = tiny_model()
    x = to_input(np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8))
    inputs = {}
    hooks = {f"blocks.{l}.hook_resid_pre": (lambda h, l=l: inputs.__setitem__(l, h)) for l in range(3)}
    with torch.no_grad():
        HookedViT(model).run(x, hooks)
        a = patterns(model, x)
    assert a.shape == (2, 3, 3, 17, 17)
    torch.testing.assert_close(a.sum(-1), torch.ones(2, 3, 3, 17))
    for l, block in enumerate(model.blocks):
        with torch.no_grad():
            qkv = block.attn.qkv(block.norm1(inputs[l])).reshape(2, 17, 3, 3, 8).permute(2, 0, 3, 1, 4)
        manual = torch.softmax(qkv[0] @ qkv[1].transpose(-2, -1) / 8**0.5, dim=-1)
        torch.testing.assert_close(a[:, l], manual, rtol=1e-5, atol=1e-6)


def test_captured_attention_is_what_timms_own_unfused_attention_computes(tiny_model):
    """The reference is timm's Attention itself, fused attention off, read after its softmax."""
    model = tiny_model()
    x = to_input(np.random.default_rng(1).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8))
    seen = {}
    for l, block in enumerate(model.blocks):
        block.attn.fused_attn = False
        block.attn.attn_drop.register_forward_hook(lambda m, a, out, l=l: seen.__setitem__(l, out))
    with torch.no_grad():
        model(x)
        a = patterns(model, x)
    torch.testing.assert_close(a, torch.stack([seen[l] for l in range(3)], 1), atol=1e-6, rtol=1e-6)


RULE = {
    "view": "received",
    "min_enrichment": 2.0,
    "min_excess_share": 0.25,
    "null_ratio": 1.5,
    "mono_share": 0.75,
    "sink_enrichment": 1.5,
    "local_ratio": 0.5,
    "diffuse_entropy": 0.9,
    "bootstrap": 200,
    "importance_mode": "zero",
}
SIZE, PATCH, N_IMAGES = 128, 16, 16


@pytest.fixture(scope="module")
def fractions():
    """Patch fractions of real renders of different chirps: [n, G, G, C]."""
    renderer = PlotRenderer(SIZE, Distortions())
    masks = []
    for i in range(N_IMAGES):
        rng = np.random.default_rng(i)
        chirp = sample_chirp(rng)
        masks.append(renderer.render(spectrogram(chirp, rng), chirp, title_for(i + 1, chirp))[1])
    return patch_fractions(np.stack(masks), PATCH)


def rows_on(keys: np.ndarray) -> np.ndarray:
    """[n, P] key weights -> [n, P, P] every patch query attending to them."""
    d = keys / keys.sum(-1, keepdims=True)
    return np.repeat(d[:, None, :], d.shape[1], axis=1)


def synthetic_labels(fractions: np.ndarray, heads: list[np.ndarray]) -> list[str]:
    """Labels for heads given as [n, P, P] patch-to-patch attention, through the stages' code."""
    grid = fractions.shape[1:3]
    n, patches = len(fractions), grid[0] * grid[1]
    a = np.zeros((n, 1, len(heads), patches + 1, patches + 1), np.float32)
    a[..., 0, 1:] = 1 / patches  # the CLS row: uniform, unused by the received view
    for h, rows in enumerate(heads):
        a[:, 0, h, 1:, 1:] = rows
    a = torch.from_numpy(a)
    chirp = torch.from_numpy(region_indicators(fractions)[..., 0])
    per_view = views(a, 1, chirp)
    distances = grid_distances(grid)
    entropies = {v: entropy(d) for v, d in per_view.items()}
    distance, uniform = mean_distance(a, 1, distances), float(distances.mean())
    s = region_scores({v: d.numpy() for v, d in per_view.items()}, fractions, region_indicators(fractions), seed=0)
    scores = scores_arrays(entropies, distance, uniform, s, margin_valued=None)
    stats = region_stats(scores, "received", RULE["min_enrichment"], RULE["bootstrap"], 0)
    table = wide(stats, head_table(entropies, distance, uniform), "entropy_received")
    return label_all(table, RULE)


def test_synthetic_heads_on_real_renders_get_the_roles_they_were_built_for(fractions):
    regions = region_indicators(fractions)  # [n, P, R]: chirp, text, colorbar, frame, margin
    n, patches = regions.shape[:2]
    uniform = np.ones((n, patches))
    ring = np.zeros((8, 8))
    ring[[0, -1], :] = ring[:, [0, -1]] = 1
    distances = grid_distances(fractions.shape[1:3]).numpy()
    local = np.broadcast_to(np.exp(-(distances**2)), (n, patches, patches))
    heads = {
        "follows the chirp": rows_on(regions[..., 0]),
        "where chirps usually are": rows_on(np.broadcast_to(regions[..., 0].mean(0) ** 4, (n, patches))),
        "tick labels and title (fixed)": rows_on(regions[..., 1]),
        "local": local / local.sum(-1, keepdims=True),
        "white margin": rows_on(regions[..., 4]),
        "border ring, 80%": 0.8 * rows_on(np.broadcast_to(ring.ravel(), (n, patches))) + 0.2 * rows_on(uniform),
        "uniform": rows_on(uniform),
    }
    labels = dict(zip(heads, synthetic_labels(fractions, list(heads.values()))))
    assert labels == {
        "follows the chirp": "chirp",
        "where chirps usually are": "positional-interior",
        "tick labels and title (fixed)": "furniture-text",
        "local": "local",
        "white margin": "sink",
        "border ring, 80%": "sink",
        "uniform": "diffuse",
    }


def test_the_shuffle_null_scores_each_image_against_another(fractions):
    order = derangement(N_IMAGES, seed=0)
    assert sorted(order) == list(range(N_IMAGES)) and (order != np.arange(N_IMAGES)).all()
    follows = torch.from_numpy(region_indicators(fractions)[None, None, ..., 0].transpose(2, 0, 1, 3))  # [n, 1, 1, P]
    maps = {"received": (follows / follows.sum(-1, keepdim=True)).numpy()}
    scores = region_scores(maps, fractions, region_indicators(fractions), seed=0)
    real = scores.mass["received"][:, 0, 0, 0]
    np.testing.assert_allclose(real, 1, rtol=1e-6)  # all of a chirp-following head's mass is on its chirp
    assert (scores.null_mass["received"][:, 0, 0, 0] < 1).all()


def test_a_cls_view_of_a_flatten_model_is_refused():
    p = params.load(ROOT / "params.yaml")
    with pytest.raises(ParamsError, match=r"classify.view 'cls' .* model.pooling 'flatten' never reads"):
        params.validate({**p, "classify": {**p["classify"], "view": "cls"}})
    params.validate({**p, "model": {**p["model"], "pooling": "token"}, "classify": {**p["classify"], "view": "cls"}})


def test_attention_and_classify_stages_run_under_dvc(reproduced):
    """On a copy of the session's tiny run (conftest: 2 layers of 3 heads, 2 example images and overlays)."""
    project = reproduced
    layers = project.params()["model"]["depth"]
    n_heads = layers * project.params()["model"]["num_heads"]
    assert (
        layers < 6 and "the paper's layer-6 comparisons do not apply" in (project.path / "report/report.md").read_text()
    )  # no layer 6: the report says so
    maps = np.load(project.path / "results/attention/maps.npz")
    assert sorted(maps.files) == ["cls", "from_chirp", "received"]
    for view in maps.files:
        assert maps[view].shape == (layers, 3, 6, 6)
        np.testing.assert_allclose(maps[view].sum(axis=(2, 3)), 1, rtol=1e-5)
    region = pd.read_csv(project.path / "results/attention/region_mass.csv")
    assert len(region) == 3 * n_heads * len(CLASSES)  # views x layers x heads x classes
    np.testing.assert_allclose(region.groupby(["view", "layer", "head"])["mass"].sum(), 1, rtol=1e-5)
    assert (
        not region[region["view"] == "cls"]["reaches_output"].any()
        and region[region["view"] == "received"]["reaches_output"].all()
    )
    heads = pd.read_csv(project.path / "results/classify/heads.csv")
    assert len(heads) == n_heads and {
        "label",
        "important",
        "increase_pct",
        "enrichment_chirp",
        "excess_ci_low_chirp",
        "distance",
    } <= set(heads.columns)
    assert heads["layer"].dtype.kind == heads["head"].dtype.kind == "i"
    metrics = json.loads((project.path / "metrics/classify.json").read_text())
    assert (
        sum(metrics["counts"]["all"].values()) == n_heads
        and metrics["view"] == "received"
        and metrics["view_reaches_output"]
    )
    sensitivity = pd.read_csv(project.path / "results/classify/sensitivity.csv")
    assert (sensitivity.drop(columns=["threshold", "value", "is_default"]).sum(axis=1) == n_heads).all()
    for name in ("grid_cls.png", "grid_received.png", "grid_from_chirp.png", "overlays.png", "distance.png"):
        assert (project.path / "plots/attention" / name).stat().st_size > 5_000
    assert (project.path / "plots/classify/taxonomy.png").exists()

    project.set_params({"classify": {"mono_share": 0.9}})
    rerun = project.dvc("repro", "classify")
    assert "Running stage 'classify'" in rerun.stdout and "Running stage 'attention'" not in rerun.stdout


def test_ceiling_free_scores_reach_their_top_for_a_large_region_where_enrichment_cannot():
    """A head with all its attention on a region of 27 of 64 patches (the text's usual share) has an
    enrichment of only 64 / 27 = 2.37; AUROC and excess share both read 1. A uniform head reads 0.5 and 0."""
    mask = np.zeros((2, 64), bool)
    mask[:, :27] = True
    on_region = np.where(mask, 1 / 27, 0.0)[:, None, None, :]  # [n, L=1, H=1, P]
    uniform = np.full((2, 1, 1, 64), 1 / 64)
    area = mask.mean(1)
    mass = (on_region * mask[:, None, None, :]).sum(-1)
    assert np.allclose(mass / area[:, None, None], 64 / 27)
    assert np.allclose(auroc(on_region + 1e-9 * np.arange(64), mask), 1.0)
    assert np.allclose(excess_share(mass, area), 1.0)
    assert np.allclose(auroc(uniform + 1e-9 * np.random.default_rng(0).random(64), mask), 0.5, atol=0.15)
    assert np.allclose(excess_share((uniform * mask[:, None, None, :]).sum(-1), area), 0.0, atol=1e-12)
    assert np.isnan(auroc(uniform, np.zeros((2, 64), bool))).all()  # no region: no score
