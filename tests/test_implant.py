"""Graded implants (vitheads.model.implant, vitheads.interp.implant) on tiny models: the implanted block's
write equals its gain's prediction computed by hand from the hooked pass, gain 0 changes nothing bit for bit,
the redundant implant's heads carry half each, the direct implant changes nothing before the readout, bad
specs are refused by field, and calibration reaches its levels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import make_tiny_model
from vitheads.data.variants import PairSet
from vitheads.interp.edits import Edit, run_with_edits
from vitheads.interp.hooked import HookedViT
from vitheads.interp.implant import calibrate, design, element_feature
from vitheads.model.implant import Implant, head_value_direction, implant, readout_direction
from vitheads.model.vit import to_input

LAYER, HEAD, TARGET, CENTRE = 1, 2, 1, 0.3


def images(seed: int = 0, n: int = 6) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def fake_pairs(n: int = 6) -> PairSet:
    """Member B is member A with the patch of token 5 (row 1, column 1 of the 4x4 grid) painted white."""
    a = images(1, n)
    b = a.copy()
    b[:, 8:16, 8:16] = 255
    element = np.zeros((n, 16), bool)
    element[:, 5] = True
    return PairSet("title_text", np.stack([a, b], 1), element, element & False, element & False, 0)


def unit(seed: int, dim: int = 24) -> torch.Tensor:
    v = torch.randn(dim, generator=torch.Generator().manual_seed(seed))
    return v / v.norm()


def spec(site: str, gain: float, model) -> Implant:
    r = readout_direction(model, TARGET)
    if site == "head":
        return Implant("head", LAYER, TARGET, (HEAD,), unit(3), r, centre=CENTRE, gain=gain)
    if site == "redundant":
        return Implant("redundant", LAYER, TARGET, (0, HEAD), unit(3), r, centre=CENTRE, gain=gain)
    if site == "mlp":
        return Implant("mlp", LAYER, TARGET, write=r, unit=7, centre=CENTRE, gain=gain)
    return Implant("direct", 3, TARGET, feature=unit(3), tokens=(5, 6), centre=CENTRE, gain=gain)


def cached(model, x, names):
    store = {}

    def keep(name):
        return lambda v: store.__setitem__(name, v)

    hooks = {n: keep(n) for n in names}
    out = HookedViT(model, explicit_attention=True).run(x, hooks=hooks)
    return out, store


@torch.no_grad()
def test_the_head_implant_writes_its_gains_prediction_and_the_output_follows_it():
    model, x = make_tiny_model(), to_input(images())
    s = spec("head", 0.7, model)
    names = [f"blocks.{LAYER}.hook_resid_pre", f"blocks.{LAYER}.attn.hook_pattern", f"blocks.{LAYER}.attn.hook_z"]
    out, clean = cached(model, x, names)
    out_implanted, implanted = cached(implant(model, s), x, names)
    # by hand: the head's values gain g (u . LN1(x_j) - c) a, mixed by the trained (unchanged) attention
    read = model.blocks[LAYER].norm1(clean[names[0]]) @ s.feature - CENTRE  # [B, N]
    a = head_value_direction(model, LAYER, HEAD, s.write)
    expected_z = 0.7 * (clean[names[1]][:, HEAD] @ read[..., None]) * a  # [B, N, Dh]
    assert torch.equal(implanted[names[1]], clean[names[1]])  # attention is the trained model's
    dz = implanted[names[2]] - clean[names[2]]
    torch.testing.assert_close(dz[:, :, HEAD], expected_z, atol=1e-5, rtol=1e-4)
    assert dz[:, :, [0, 1]].abs().max() < 1e-6  # the other heads write what they wrote
    w_o = HookedViT(model).w_o(LAYER)[HEAD]  # [Dh, D]
    assert float((a @ w_o) @ s.write) == pytest.approx(1.0, abs=1e-4)  # unit component along r
    # exact: the implanted model is the original plus that write at block LAYER's attention output
    write = expected_z @ w_o
    edited = run_with_edits(HookedViT(model), [Edit(f"blocks.{LAYER}.hook_attn_out", "add", write)], x=x)
    torch.testing.assert_close(out_implanted, edited, atol=1e-5, rtol=1e-4)
    # first order: the output change per unit gain is the write's derivative through the rest of the model
    hooked = HookedViT(model, explicit_attention=True)

    def along(t):
        return hooked.run(x, hooks={f"blocks.{LAYER}.hook_attn_out": lambda v: v + t * write / 0.7})

    _, slope = torch.func.jvp(along, (torch.tensor(0.0),), (torch.tensor(1.0),))
    for g in (1e-2, 1e-3):
        small = HookedViT(implant(model, s.with_gain(g)), explicit_attention=True).run(x)
        torch.testing.assert_close((small - out) / g, slope, atol=2e-2 * float(slope.abs().max()), rtol=0)


@torch.no_grad()
@pytest.mark.parametrize("site", ["head", "redundant", "mlp", "direct"])
def test_a_zero_gain_implant_changes_nothing_bit_for_bit(site):
    model, x = make_tiny_model(), to_input(images())
    implanted = implant(model, spec(site, 0.0, model))
    assert implanted is not model
    before, after = model.state_dict(), implanted.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert torch.equal(model(x), implanted(x))
    changed = implant(model, spec(site, 0.5, model))  # and a non-zero gain does change weights and outputs
    assert not torch.equal(model(x), changed(x))
    assert all(torch.equal(before[k], model.state_dict()[k]) for k in before)  # the original is untouched


@torch.no_grad()
def test_the_redundant_implants_heads_each_carry_half():
    model, x = make_tiny_model(), to_input(images())
    name = f"blocks.{LAYER}.attn.hook_z"
    _, clean = cached(model, x, [name])
    _, both = cached(implant(model, spec("redundant", 0.8, model)), x, [name])
    for h in (0, HEAD):
        alone = Implant("head", LAYER, TARGET, (h,), unit(3), readout_direction(model, TARGET), centre=CENTRE, gain=0.4)
        _, single = cached(implant(model, alone), x, [name])
        torch.testing.assert_close(both[name][:, :, h], single[name][:, :, h], atol=1e-6, rtol=1e-5)
        assert (both[name][:, :, h] - clean[name][:, :, h]).abs().max() > 1e-4
    torch.testing.assert_close(both[name][:, :, 1], clean[name][:, :, 1], atol=1e-6, rtol=0)


@torch.no_grad()
def test_the_direct_implant_changes_the_output_only_through_the_readout():
    model, x = make_tiny_model(), to_input(images())
    s = spec("direct", 0.6, model)
    out, clean = cached(model, x, ["hook_readout_in"])
    out_implanted, implanted = cached(implant(model, s), x, ["hook_readout_in"])
    assert torch.equal(clean["hook_readout_in"], implanted["hook_readout_in"])
    read = (clean["hook_readout_in"][:, [1 + t for t in s.tokens]] @ s.feature - CENTRE).sum(1)  # [B]
    expected = out.clone()
    expected[:, TARGET] += 0.6 * read
    torch.testing.assert_close(out_implanted, expected, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_the_mlp_implant_is_linear_in_its_gain_at_the_units_output():
    model, x = make_tiny_model(), to_input(images())
    name = f"blocks.{LAYER}.hook_mlp_out"
    _, clean = cached(model, x, [name])
    writes = [cached(implant(model, spec("mlp", g, model)), x, [name])[1][name] - clean[name] for g in (0.5, 1.0)]
    torch.testing.assert_close(2 * writes[0], writes[1], atol=1e-5, rtol=1e-4)
    r = readout_direction(model, TARGET)
    along = writes[1] @ r  # [B, N]: the write is along r only
    torch.testing.assert_close(writes[1], along[..., None] * r, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    "change, field",
    [
        ({"site": "neuron"}, "site"),
        ({"layer": 5}, "layer"),
        ({"heads": (0, 1)}, "heads"),
        ({"heads": (3,)}, "heads"),
        ({"target": 3}, "target"),
        ({"feature": torch.ones(5)}, "feature"),
        ({"write": None}, "write"),
        ({"gain": float("nan")}, "gain"),
        ({"site": "mlp", "heads": ()}, "unit"),
        ({"site": "redundant", "heads": (1, 1)}, "heads"),
        ({"site": "direct", "heads": (), "layer": 3}, "tokens"),
        ({"site": "direct", "heads": (), "layer": 1, "tokens": (0,)}, "layer"),
    ],
)
def test_a_bad_spec_is_refused_naming_its_field(change, field):
    model = make_tiny_model()
    good = spec("head", 0.5, model)
    bad = Implant(**{**good.__dict__, **change})
    with pytest.raises(ValueError, match=rf"Implant\.{field}\b"):
        implant(model, bad)


def test_the_element_feature_points_along_the_elements_change_at_its_tokens():
    model, pairs = make_tiny_model(), fake_pairs()
    f = element_feature(model, pairs, LAYER)
    assert f.tokens == (5,)
    assert float(f.feature.norm()) == pytest.approx(1.0, abs=1e-5)
    assert f.shift > 0
    readout = element_feature(model, pairs, 3)
    assert readout.tokens == (5,) and readout.layer == 3


def test_calibration_reaches_its_levels_and_records_what_it_achieved():
    model, pairs = make_tiny_model(), fake_pairs()
    levels = [0.001, 0.01, 0.1]
    found = calibrate(model, design(model, "head", LAYER, TARGET, pairs, (HEAD,)), pairs, levels)
    assert [c.level for c in found] == levels
    assert all(c.reached for c in found), found
    assert all(abs(c.effect / c.level - 1) <= 0.1 for c in found)
    assert found[0].gain < found[1].gain < found[2].gain
    for site, heads in (("mlp", ()), ("direct", ())):
        (c,) = calibrate(model, design(model, site, LAYER, TARGET, pairs, heads), pairs, [0.01])
        assert c.reached, (site, c)
