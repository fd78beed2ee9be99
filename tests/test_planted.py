"""Planted mechanisms: a planted model's cue tokens are read by its designated heads only, and the readout
reads none of them; the pipeline plants, trains and scores them under dvc."""

import json

import numpy as np
import pytest
import torch
from conftest import make_tiny_model

from vitheads.analysis.benchmark import DECOMPOSITION
from vitheads.data.cues import designated_heads
from vitheads.interp.cache import run_with_cache
from vitheads.interp.causal import CACHED
from vitheads.interp.decompose import route_changes
from vitheads.interp.hooked import HookedViT
from vitheads.interp.patching import kv_patched_layer
from vitheads.model.planted import plant
from vitheads.model.vit import to_input
from vitheads.names import CUE_TARGETS

TOKENS = {"text": [14, 15], "colorbar": [3, 7], "frame": [12]}  # of the tiny model's 16 patch tokens


def planted_model():
    model = make_tiny_model(depth=4)  # layers 0-3 hold every kind's designated heads (vitheads.data.cues)
    return plant(model, TOKENS)


def images(n=3, seed=0):
    return to_input(np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8))


def test_only_the_designated_heads_attend_to_a_kinds_cue_tokens():
    model = planted_model()
    captured = {}
    hooks = {f"blocks.{l}.attn.hook_pattern": (lambda a, l=l: captured.__setitem__(l, a)) for l in range(4)}
    with torch.inference_mode():
        HookedViT(model).run(images(), hooks)
    designated = designated_heads(list(TOKENS))
    for kind, tokens in TOKENS.items():
        keys = [1 + t for t in tokens]  # after CLS
        for layer in range(4):
            for head in range(3):
                mass = captured[layer][:, head, :, keys].sum(-1)
                if (layer, head) in designated[kind]:  # drawn to its cue: above a uniform head's share
                    assert mass.min() > len(keys) / captured[layer].shape[-1]
                else:
                    assert mass.max() == 0, f"L{layer + 1}H{head + 1} sees the {kind} cue"


def test_the_readout_reads_no_cue_token_and_a_cue_reaches_the_output_only_through_the_designated_heads():
    """Change only the cue tokens' embeddings: the output moves; with every designated head's keys and values
    at those tokens patched back to the clean pass's, it does not."""
    model = planted_model()
    x = images()
    cue_tokens = torch.zeros(3, 17, dtype=torch.bool)
    cue_tokens[:, [1 + t for ts in TOKENS.values() for t in ts]] = True
    noise = torch.randn(3, 17, 24) * cue_tokens[..., None]
    hooked = HookedViT(model)
    bumped = {"blocks.0.hook_resid_pre": lambda h: h + noise}
    with torch.inference_mode():
        clean = run_with_cache(model, x)
        moved = hooked.run(x, bumped)
    assert (moved - clean.output).abs().max() > 1e-4  # the cue tokens matter, through the designated heads
    readout = model.readout_keep.view(4, 4)
    assert readout.flatten()[[t for ts in TOKENS.values() for t in ts]].sum() == 0 and readout.sum() == 16 - 5
    with torch.inference_mode():  # a non-designated head's keys and values at the cue tokens change nothing
        source = run_with_cache(hooked, x, hooks=bumped)  # the cue tokens' embeddings changed
        assert (source.resid_pre[0] - clean.resid_pre[0]).abs().max() > 0.1
        outputs, _ = kv_patched_layer(model, clean, source, 0, cue_tokens, heads=[0, 2])
    torch.testing.assert_close(outputs, clean.output.expand(2, -1, -1), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize(
    "kinds, frame_cue, control",
    # at the tiny projects' size the text cue and the frame's tick reach one token in common: generate refuses them
    [(["text", "colorbar"], "tick", False), (["frame"], "band", True)],
)
def test_a_planted_run_trains_its_cues_and_scores_the_benchmark_under_dvc(project, kinds, frame_cue, control):
    project.set_params(
        {
            "plant": {"cues": kinds, "control": control, "frame_cue": frame_cue},
            "model": {"depth": 4},
            "causal": {"kv_patching": True},
        }
    )
    project.dvc("repro", "causal")
    meta = json.loads((project.path / "data/generated/meta.json").read_text())
    targets = [CUE_TARGETS[k] for k in kinds]
    assert meta["cues"]["targets"] == targets and meta["cues"]["control"] == control
    assert meta["cues"]["frame_cue"] == frame_cue
    config = json.loads((project.path / "models/model.json").read_text())
    assert config["targets"][3:] == targets and config["cue_tokens"] == meta["cues"]["tokens"]
    causal = json.loads((project.path / "metrics/causal.json").read_text())
    assert set(causal["planted"]) == set(kinds)
    assert all(DECOMPOSITION in causal["planted"][k]["methods"] for k in kinds)  # scored beside the per-head methods
    assert {f"{k}_cue" for k in kinds} <= set(causal["model_effect"])
    assert (project.path / "results/causal/benchmark.csv").is_file()


def test_the_route_split_moves_a_planted_cue_only_through_its_designated_head():
    """Change only the text cue's tokens: until the designated head reads them, no head's write at any other
    token can change (the others are masked off the cue's keys and values, and the other tokens' queries do not
    change), so the route split must give every other head of the first two layers exactly nothing on the moved
    route, the designated head a share, and add up to the whole change."""
    model = planted_model()
    x = images()
    changed = torch.zeros(3, 17, dtype=torch.bool)
    changed[:, [1 + t for t in TOKENS["text"]]] = True
    noise = torch.randn(3, 17, 24) * changed[..., None]
    hooked = HookedViT(model)
    with torch.inference_mode():
        a = run_with_cache(hooked, x, CACHED)
        b = run_with_cache(hooked, x, CACHED, hooks={"blocks.0.hook_resid_pre": lambda h: h + noise})
        split = route_changes(hooked, a, b, changed)  # [B, 2, K, 2, T]
    total = split.sum((2, 3))  # [B, 2, T]: each direction's components add up to the whole change
    torch.testing.assert_close(total, (b.output - a.output)[:, None].expand_as(total), atol=1e-5, rtol=1e-4)
    heads = model.blocks[0].attn.num_heads
    sees = model.key_bias[:, :, 0, 1 + TOKENS["text"][0]] > float("-inf")  # [L, H]: the heads that read the cue
    for layer in (0, 1):
        components = 1 + layer * (heads + 1) + torch.arange(heads)  # the layer's heads (vitheads.interp.decompose)
        moved = split[:, :, components, 1].abs().sum((0, 1, 3))  # [H]: writes at the other tokens
        for head in range(heads):
            assert (moved[head] > 1e-5) if sees[layer, head] else (moved[head] == 0), f"L{layer}H{head}"
    assert sees[:2].sum() == 1
