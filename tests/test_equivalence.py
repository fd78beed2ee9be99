"""Every intervention through the hooked pass equals what the hand-written forwards it replaced computed.

tests/data/interventions_reference.npz holds the results of `compute()` below run on the code of commit
b1e2f13 (the last before the hooked pass), on the same seeded tiny models; regenerate it only on purpose:
    PYTHONPATH=<checkout of b1e2f13> python tests/test_equivalence.py tests/data/interventions_reference.npz
"""

import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from conftest import make_tiny_model

from vitheads.data.variants import PairSet
from vitheads.interp.ablation import all_heads, sweep
from vitheads.interp.attention import patterns
from vitheads.interp.attribution import direct_attribution
from vitheads.interp.author_protocol import author_sweep
from vitheads.interp.baselines import linearised_change, rollout_mass
from vitheads.interp.cache import run_with_cache
from vitheads.interp.causal import measure_variant
from vitheads.interp.patching import attribution_patching, kv_patched_layer, patched_layer
from vitheads.model.planted import plant
from vitheads.model.vit import to_input

REFERENCE = Path(__file__).parent / "data" / "interventions_reference.npz"
RENAMED = {"kv_read": "kv_read_element", "kv_broadcast": "kv_read_elsewhere"}  # b1e2f13's field names
TOKENS = {"text": [14, 15], "colorbar": [3, 7]}  # of the tiny model's 16 patch tokens


def pairs(n: int = 4) -> PairSet:
    """Random images whose member B differs in one 8x8 patch per image (patch 5): a moved element."""
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    b = a.copy()
    b[:, 8:16, 8:16] = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    element = np.zeros((n, 16), bool)
    element[:, 5] = True
    old = np.zeros((n, 16), bool)
    old[:, 6] = True
    return PairSet("title_moved", np.stack([a, b], 1), element, old, element.copy(), 0)


def model_results(model, prefix: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    z_true = rng.standard_normal((6, 3)).astype(np.float32)
    out = {}
    errors = sweep(model, images, z_true, all_heads(len(model.blocks), 3, ["zero", "mean"]), batch_size=4, max_rows=8)
    out["sweep"] = np.stack([errors.baseline, *errors.ablated.values()])
    x = to_input(images[:4])
    x_other = to_input(images[2:])
    tokens = torch.zeros(4, 17, dtype=torch.bool)
    tokens[:, [1, 4, 8, 15, 16]] = True
    with torch.inference_mode():
        target, source = run_with_cache(model, x), run_with_cache(model, x_other)
        out["output"] = target.output.numpy()
        out["patched"] = np.stack([patched_layer(model, target, source, l).numpy() for l in range(len(model.blocks))])
        kv = [kv_patched_layer(model, target, source, l, tokens) for l in range(len(model.blocks))]
        out["kv_outputs"] = np.stack([o.numpy() for o, _ in kv])
        out["kv_read"] = np.stack([dz.numpy() for _, dz in kv])
        a = patterns(model, x)
        out["patterns"] = a.numpy()
        out["rollout"] = rollout_mass(a, tokens, 1)
        parts = direct_attribution(model, x)
        for name in ("embed", "heads", "attn_bias", "mlp", "constant"):
            out[f"attribution_{name}"] = getattr(parts, name).numpy()
    out["attribution_patching"] = attribution_patching(model, target, source).numpy()
    out["linearised"] = linearised_change(model, x, x_other)
    out["author"] = np.array([loss for *_, loss in author_sweep(model, images, z_true * 10 + 3)])
    measures = measure_variant(model, pairs(), z_true[:4], batch_size=2, n_patch=4, kv=True)
    for name, value in asdict(measures).items():
        name = RENAMED.get(name, name)
        if isinstance(value, dict):
            out |= {f"measure_{name}_{k}": v for k, v in value.items()}
        elif value is not None:
            out[f"measure_{name}"] = value
    return {f"{prefix}{k}": np.asarray(v, dtype=np.float64) for k, v in out.items()}


def compute() -> dict[str, np.ndarray]:
    plain = make_tiny_model(seed=1)
    planted = plant(make_tiny_model(seed=2, depth=4), TOKENS)
    return model_results(plain, "plain_") | model_results(planted, "planted_")


def test_every_intervention_equals_the_hand_written_forwards_it_replaced():
    reference = np.load(REFERENCE)
    now = compute()
    assert set(reference.files) <= set(now)  # measures added since (the route split) have no reference
    for name in reference.files:
        # bit for bit on the machine that stored the reference (an Intel Xeon VM); on another CPU the float32
        # kernels dispatch differently and agree to a few ulps of their operands (seen on an AMD EPYC VM: at most
        # 7.6e-6 absolute on values up to 94; 2.4e-6 on a difference of squared errors of size 0.01)
        np.testing.assert_allclose(now[name], reference[name], rtol=1e-6, atol=1e-5, err_msg=name)


if __name__ == "__main__":
    np.savez_compressed(sys.argv[1], **compute())
