"""attention and classify: captured patterns are real softmax rows; the taxonomy reads the masks."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from vitheads.attention import AttentionSummary, head_table, patterns, region_table
from vitheads.chirps import sample_chirp, spectrogram
from vitheads.generation import patch_fractions
from vitheads.hooks import hooked
from vitheads.model import build_model, to_input
from vitheads.names import CLASS_ID, CLASSES
from vitheads.rendering import Distortions, PlotRenderer, title_for
from vitheads.taxonomy import classify

MODEL = {"image_size": 32, "patch_size": 8, "depth": 3, "num_heads": 3, "embed_dim": 24, "mlp_ratio": 2.0, "pooling": "flatten", "stem": "patch", "init": "scratch"}
RULE = {"min_enrichment": 2.0, "mono_share": 0.75, "diffuse_entropy": 0.9, "importance_mode": "zero", "view": "cls"}


def test_captured_attention_is_softmax_of_q_and_k():
    torch.manual_seed(0)
    model = build_model(MODEL, 3).eval()
    x = to_input(np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8))
    inputs = {}
    hooks = {f"blocks.{l}.hook_resid_pre": (lambda h, l=l: inputs.__setitem__(l, h)) for l in range(3)}
    with torch.no_grad(), hooked(model, hooks):
        a = patterns(model, x)
    assert a.shape == (2, 3, 3, 17, 17)
    torch.testing.assert_close(a.sum(-1), torch.ones(2, 3, 3, 17))
    for l, block in enumerate(model.blocks):
        with torch.no_grad():
            qkv = block.attn.qkv(block.norm1(inputs[l])).reshape(2, 17, 3, 3, 8).permute(2, 0, 3, 1, 4)
        manual = torch.softmax(qkv[0] @ qkv[1].transpose(-2, -1) / 8**0.5, dim=-1)
        torch.testing.assert_close(a[:, l], manual, rtol=1e-5, atol=1e-6)
    assert all(b.attn.fused_attn for b in model.blocks)  # switched back on after capture
    assert all(not b.attn.attn_drop._forward_hooks for b in model.blocks)


def rendered_fractions(distortions: Distortions, size=96, patch=16, seed=3):
    rng = np.random.default_rng(seed)
    chirp = sample_chirp(rng)
    _, mask = PlotRenderer(size, distortions).render(spectrogram(chirp, rng), chirp, title_for(1, chirp))
    return patch_fractions(mask[None], patch)[0].reshape(-1, len(CLASSES))  # [P, C]


def on(fractions, *classes):
    """Attention spread evenly over the patches that contain any of the classes."""
    where = fractions[:, [CLASS_ID[c] for c in classes]].sum(1) > 0
    assert where.any()
    return where / where.sum()


def labels_for(maps: list[np.ndarray], fractions: np.ndarray) -> list[str]:
    r = np.stack(maps)  # [heads, P]
    entropy = (-(r * np.log(np.clip(r, 1e-12, None))).sum(1) / np.log(r.shape[1]))[None, None]
    summary = AttentionSummary({}, {"cls": (r @ fractions)[None, None]}, fractions.mean(0)[None], {"cls": entropy, "received": entropy})
    return list(classify(region_table(summary), head_table(summary), RULE)["label"])


def test_synthetic_maps_get_the_labels_they_were_built_for():
    f = rendered_fractions(Distortions())
    uniform = np.full(len(f), 1 / len(f))
    split = 0.5 * on(f, "title") + 0.5 * on(f, "colorbar")
    assert labels_for([on(f, "chirp"), on(f, "title"), split, uniform], f) == [
        "monosemantic-chirp", "monosemantic-text", "polysemantic", "diffuse",
    ]


def test_without_a_colorbar_no_head_is_a_colorbar_detector():
    with_bar = rendered_fractions(Distortions())
    f = rendered_fractions(Distortions(colorbar=False))
    assert f[:, CLASS_ID["colorbar"]].sum() == 0
    where_the_bar_was = on(with_bar, "colorbar")  # now margin and white space
    labels = labels_for([where_the_bar_was, on(f, "chirp")], f)
    assert "monosemantic-colorbar" not in labels and labels[1] == "monosemantic-chirp"


def test_attention_and_classify_stages_run_under_dvc(project):
    project.set_params({"model": {"depth": 4}, "ablate": {"bootstrap": 20}, "attention": {"example_images": 2}, "figures": {"overlay_images": 2, "overlay_heads": 2}})
    project.dvc("repro", "report")  # 4 layers: no layer 6, the report says so
    assert "the paper's layer-6 comparisons do not apply" in (project.path / "report/report.md").read_text()
    maps = np.load(project.path / "results/attention/maps.npz")
    assert maps["cls"].shape == maps["received"].shape == (2, 3, 6, 6)
    np.testing.assert_allclose(maps["received"].sum(axis=(2, 3)), 1, rtol=1e-5)
    np.testing.assert_allclose(maps["cls"].sum(axis=(2, 3)), 1, rtol=1e-5)
    region = pd.read_csv(project.path / "results/attention/region_mass.csv")
    assert len(region) == 2 * 2 * 3 * len(CLASSES)  # views x layers x heads x classes
    np.testing.assert_allclose(region.groupby(["view", "layer", "head"])["mass"].sum(), 1, rtol=1e-5)
    heads = pd.read_csv(project.path / "results/classify/heads.csv")
    assert len(heads) == 6 and {"label", "dominant", "important", "increase_pct"} <= set(heads.columns)
    metrics = json.loads((project.path / "metrics/classify.json").read_text())
    assert sum(metrics["counts"]["all"].values()) == 6
    for name in ("grid_cls.png", "grid_received.png", "overlays.png"):
        assert (project.path / "plots/attention" / name).stat().st_size > 5_000
    assert (project.path / "plots/classify/taxonomy.png").exists()

    project.set_params({"classify": {"mono_share": 0.9}})
    rerun = project.dvc("repro", "classify")
    assert "Running stage 'classify'" in rerun.stdout and "Running stage 'attention'" not in rerun.stdout
