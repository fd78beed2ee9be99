"""What a graded implant (vitheads.model.implant) reads, and the gain that gives a chosen whole-model effect.

element_feature  the element's feature u at a block: the mean difference, member B minus member A of the
                 element's paired renders, of the normalised residual stream (the block's LN1 output; at the
                 readout, the final norm's output) at the tokens the element changes, unit norm; with the
                 centre (mean of u . n over member A's tokens) and the element's tokens.
responsive_unit  the hidden unit of a block's MLP whose activation changes most at the changed tokens.
design           an Implant at gain 0 for a site, a layer and a target, built from the pairs.
calibrate        per wanted effect level (z units), the gain whose implant changes the target's paired-render
                 change by that much: effect(g) = mean over pairs of |change_g - change_0| of the target, where
                 change = prediction(member B) - prediction(member A); a few secant steps on the measured effect
                 in log-log (effect ~ g to first order), the achieved effect recorded per level.

Every pass starts from the stream entering the implanted block, cached once from the original model (an
implant edits nothing before its block), so one evaluation costs the blocks from the implant's layer on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from vitheads.data.variants import PairSet
from vitheads.interp.cache import run_with_cache
from vitheads.interp.hooked import READOUT_POINT, HookedViT
from vitheads.model.implant import Implant, implant, readout_direction
from vitheads.model.vit import device_of, to_input

CHANGE_TOLERANCE = 1e-6  # a token is changed when its embedding moves more than this (interp.causal.changed_tokens)


@dataclass(frozen=True)
class ElementFeature:
    """u [D] at `layer` (the depth: the readout's input), centres of u . n on member A (all tokens; the element's
    tokens), the patch tokens the element changes in at least half the pairs, and the mean shift of u . n at
    the changed tokens (B - A)."""

    layer: int
    feature: torch.Tensor
    centre: float
    centre_element: float
    tokens: tuple[int, ...]
    shift: float


def _streams(hooked: HookedViT, x: torch.Tensor, names: list[str]) -> dict[str, torch.Tensor]:
    """The named hook points' values in one clean pass."""
    return run_with_cache(hooked, x, points=(), names=names).store


def _point(hooked: HookedViT, layer: int) -> str:
    """The stream entering block `layer` (the depth: leaving the last block)."""
    return f"blocks.{layer - 1}.hook_resid_post" if layer == hooked.depth else f"blocks.{layer}.hook_resid_pre"


@torch.inference_mode()
def element_feature(model: nn.Module, pairs: PairSet, layer: int, batch_size: int = 50) -> ElementFeature:
    """The element's feature at block `layer`'s LN1 (layer = depth: the final norm's output), from the pairs."""
    model.eval()
    hooked, device, prefix = HookedViT(model), device_of(model), model.num_prefix_tokens
    first = "blocks.0.hook_resid_pre"
    point = READOUT_POINT if layer == hooked.depth else f"blocks.{layer}.ln1.hook_normalized"
    total, count, changed_count = 0.0, 0, 0.0
    normed_a = []
    for start in range(0, len(pairs.images), batch_size):
        members = []
        for k in (0, 1):
            x = to_input(pairs.images[start : start + batch_size, k], device)
            s = _streams(hooked, x, [first, point])
            members.append((s[first], s[point]))
        changed = (members[0][0] - members[1][0]).abs().amax(-1) > CHANGE_TOLERANCE  # [B, N]
        changed[:, :prefix] = False
        total = total + ((members[1][1] - members[0][1]) * changed[..., None]).sum((0, 1))
        count += int(changed.sum())
        changed_count = changed_count + changed[:, prefix:].float().sum(0)
        normed_a.append(members[0][1])
    if count == 0:
        raise ValueError(f"the pairs of '{pairs.variant}' change no token: the element has no feature")
    u = total / total.norm()
    a = torch.cat(normed_a)  # [n, N, D]
    read = a @ u  # [n, N]
    tokens = tuple(int(t) for t in torch.nonzero(changed_count >= len(pairs.images) / 2).flatten())
    if not tokens:
        tokens = (int(changed_count.argmax()),)
    mean_change = float(total @ u) / count
    patch_read = read[:, prefix:] if layer == hooked.depth else read
    return ElementFeature(
        layer,
        u.detach().clone(),
        float(patch_read.mean()),
        float(read[:, [prefix + t for t in tokens]].mean()),
        tokens,
        mean_change,
    )


@torch.inference_mode()
def responsive_unit(model: nn.Module, pairs: PairSet, layer: int, batch_size: int = 50) -> tuple[int, float]:
    """The hidden unit of block `layer`'s MLP whose activation changes most (mean |B - A|) at the changed
    tokens, and its mean activation on member A's tokens (the centre)."""
    model.eval()
    hooked, device, prefix = HookedViT(model), device_of(model), model.num_prefix_tokens
    first, hidden = "blocks.0.hook_resid_pre", f"blocks.{layer}.mlp.hook_post"
    moved, count, act_sum, act_count = 0.0, 0, 0.0, 0
    for start in range(0, len(pairs.images), batch_size):
        members = []
        for k in (0, 1):
            s = _streams(hooked, to_input(pairs.images[start : start + batch_size, k], device), [first, hidden])
            members.append((s[first], s[hidden]))  # [B, N, hidden]
        changed = (members[0][0] - members[1][0]).abs().amax(-1) > CHANGE_TOLERANCE
        changed[:, :prefix] = False
        moved = moved + ((members[1][1] - members[0][1]).abs() * changed[..., None]).sum((0, 1))
        count += int(changed.sum())
        act_sum = act_sum + members[0][1].sum((0, 1))
        act_count += members[0][1].shape[0] * members[0][1].shape[1]
    if count == 0:
        raise ValueError(f"the pairs of '{pairs.variant}' change no token: no unit responds")
    unit = int(torch.argmax(moved))
    return unit, float(act_sum[unit] / act_count)


def design(
    model: nn.Module, site: str, layer: int, target: int, pairs: PairSet, heads: tuple[int, ...] = ()
) -> Implant:
    """The implant of a site at gain 0, its feature, unit or tokens read from the pairs (layer ignored for
    direct: the readout)."""
    depth = len(model.blocks)
    if site in ("head", "redundant"):
        f = element_feature(model, pairs, layer)
        return Implant(site, layer, target, heads, f.feature, readout_direction(model, target), centre=f.centre)
    if site == "mlp":
        unit, centre = responsive_unit(model, pairs, layer)
        return Implant("mlp", layer, target, write=readout_direction(model, target), unit=unit, centre=centre)
    if site == "direct":
        f = element_feature(model, pairs, depth)
        return Implant("direct", depth, target, feature=f.feature, tokens=f.tokens, centre=f.centre_element)
    raise ValueError(f"Implant.site must be head, redundant, mlp or direct, not '{site}'")


class PairChanges:
    """The pairs' streams entering block `layer` (the depth: leaving the last block), cached once from the
    original model; `changes(m)`: prediction(B) - prediction(A) [n, T] of a model that differs from the
    original only from that block on."""

    def __init__(self, model: nn.Module, pairs: PairSet, layer: int, batch_size: int = 50):
        self.layer, self.batch_size = layer, batch_size
        hooked, device = HookedViT(model.eval()), device_of(model)
        point = _point(hooked, layer)
        with torch.inference_mode():
            self.streams = [
                torch.cat(
                    [
                        _streams(hooked, to_input(pairs.images[s : s + batch_size, k], device), [point])[point]
                        for s in range(0, len(pairs.images), batch_size)
                    ]
                )
                for k in (0, 1)
            ]

    @torch.inference_mode()
    def changes(self, model: nn.Module) -> np.ndarray:
        hooked = HookedViT(model.eval())
        out = [
            torch.cat(
                [
                    hooked.run(resid=stream[s : s + self.batch_size], start_at_layer=self.layer)
                    for s in range(0, len(stream), self.batch_size)
                ]
            )
            for stream in self.streams
        ]
        return (out[1] - out[0]).cpu().numpy()


@dataclass(frozen=True)
class Calibration:
    """One level: the gain found, the achieved effect on the target (mean |change_g - change_0|, z), its signed
    mean, the same effect on every target, the evaluations it took, and whether it came within tolerance."""

    level: float
    gain: float
    effect: float
    signed: float
    per_target: tuple[float, ...]
    evaluations: int
    reached: bool

    def as_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def implant_effect(model: nn.Module, spec: Implant, changes: PairChanges, base: np.ndarray) -> np.ndarray:
    """[T]: mean over pairs of |change_g - change_0| per target, and (last row) the signed mean: [2, T]."""
    diff = changes.changes(implant(model, spec)) - base  # [n, T]
    return np.stack([np.abs(diff).mean(0), diff.mean(0)])


def calibrate(
    model: nn.Module,
    spec: Implant,
    pairs: PairSet,
    levels_z: list[float],
    tolerance: float = 0.1,
    max_evaluations: int = 8,
    first_gain: float = 1e-3,
    batch_size: int = 50,
) -> list[Calibration]:
    """Per level (z), the gain whose implant's effect on the target comes within `tolerance` (relative) of it:
    secant steps in log gain against log effect, from the measured points nearest the level (at most
    max_evaluations per level); the achieved effect is recorded whether or not it came within tolerance."""
    if any(not level > 0 for level in levels_z):
        raise ValueError(f"calibrate's levels must be positive effects in z units, not {levels_z}")
    changes = PairChanges(model, pairs, spec.layer, batch_size)
    base = changes.changes(model)
    points: list[tuple[float, np.ndarray]] = []  # (gain, [2, T])

    def measure(g: float) -> float:
        found = implant_effect(model, spec.with_gain(g), changes, base)
        points.append((g, found))
        return float(found[0, spec.target])

    g, tries = first_gain, 0
    while measure(g) <= 1e-12 and tries < 6:  # no measurable effect yet: a larger probe
        g, tries = g * 10, tries + 1
    out = []
    for level in sorted(levels_z):
        evaluations = 0
        while True:
            usable = [(p, f[0, spec.target]) for p, f in points if f[0, spec.target] > 1e-12]
            if not usable:
                raise ValueError(f"the {spec.site} implant has no measurable effect up to gain {g:g}")
            nearest = sorted(usable, key=lambda pe: abs(math.log(pe[1] / level)))
            best_g, best_e = nearest[0]
            if abs(math.log(best_e / level)) <= math.log1p(tolerance) or evaluations >= max_evaluations:
                break
            slope = 1.0
            if len(nearest) > 1 and nearest[1][0] != best_g:
                (g1, e1), (g2, e2) = nearest[0], nearest[1]
                slope = math.log(e2 / e1) / math.log(g2 / g1) if e2 != e1 else 1.0
                slope = slope if 0.2 <= slope <= 5 else 1.0
            measure(best_g * math.exp(math.log(level / best_e) / slope))
            evaluations += 1
        found = next(f for p, f in points if p == best_g)
        out.append(
            Calibration(
                level,
                best_g,
                float(found[0, spec.target]),
                float(found[1, spec.target]),
                tuple(float(v) for v in found[0]),
                evaluations,
                abs(math.log(best_e / level)) <= math.log1p(tolerance),
            )
        )
    return out
