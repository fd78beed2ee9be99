"""Each study's summary, computed from its runs' records (vitheads.study.gather): what the report shows and
the docs quote. Every number is recomputable from the per-run values the study file keeps."""

from __future__ import annotations

import numpy as np
import pandas as pd

from vitheads import paper
from vitheads.analysis import decomposition
from vitheads.analysis import factorial as factorial_analysis
from vitheads.analysis.benchmark import DECOMPOSITION, METHODS, RELIANCE_SD, RULE
from vitheads.analysis.pooling import ESTIMATORS, random_effects, se_from_ci, seed_interval
from vitheads.analysis.stats import proportion_interval
from vitheads.compare import comparable, compare, spread
from vitheads.names import CUE_TARGETS, DISTRACTOR_KINDS, TARGETS
from vitheads.study.studies import (
    FACTORIAL_ADAPTING,
    FACTORIAL_ALL_ON,
    FACTORIAL_CELLS,
    FACTORIAL_SEEDS,
    complete_block,
)

CLAIM_KEYS = {
    "early": (paper.FIGURE_KEYS["early"], paper.CI_KEYS["early"]),
    "middle": (paper.FIGURE_KEYS["middle"], paper.CI_KEYS["middle"]),
    "difference": (paper.DIFFERENCE_KEY, f"{paper.DIFFERENCE_KEY}_ci"),
}
LABEL_BANDS = ("layers_1-3", "layers_4-5", "layers_6-11", "layers_12")


def pooled_claim(runs: list[dict], claim: str, mode: str) -> dict | None:
    """A claim's per-seed estimates and standard errors under one ablation mode, pooled with random effects under
    DerSimonian-Laird ("pooled", "verdict") and REML ("pooled_reml", "verdict_reml"); a verdict that changes with
    the estimator is fragile. A run's standard error is its bootstrap's sd; runs gathered before their metrics
    kept it fall back on their interval's width ("se_from" says which)."""
    key, ci_key = CLAIM_KEYS[claim]
    found = [r["metrics"]["ablate"].get(mode, {}) for r in runs]
    if len(runs) < 2 or any(key not in m for m in found):
        return None
    se_key = paper.SE_KEYS[claim]
    y = [m[key] for m in found]
    se = [m[se_key] if se_key in m else se_from_ci(*m[ci_key]) for m in found]
    pooled = {e: random_effects(y, se, e).as_dict() for e in ESTIMATORS}
    verdicts = {e: paper.pooled_verdict(claim, pooled[e]).__dict__ for e in ESTIMATORS}
    return {
        "seeds": [r["seed"] for r in runs],
        "values": y,
        "se": [round(s, 6) for s in se],
        "se_from": ["bootstrap sd" if se_key in m else "95% interval / 3.92" for m in found],
        "pooled": pooled["dl"],
        "verdict": verdicts["dl"],
        "pooled_reml": pooled["reml"],
        "verdict_reml": verdicts["reml"],
        "fragile": verdicts["dl"]["kind"] != verdicts["reml"]["kind"],
    }


def held_out_check(claims: dict, held: list[dict]) -> dict:
    """Where the held-out runs fall against each claim's prediction interval (mean ablation)."""
    out = {}
    for claim, by_mode in claims.items():
        entry = by_mode.get("mean")
        if not entry or not entry["pooled"]["prediction"] or not held:
            continue
        low, high = entry["pooled"]["prediction"]
        values = [r["metrics"]["ablate"]["mean"][CLAIM_KEYS[claim][0]] for r in held]
        out[claim] = {
            "seeds": [r["seed"] for r in held],
            "values": values,
            "prediction": [low, high],
            "outside": int(sum(not low <= v <= high for v in values)),
        }
    return out


def label_counts(runs: list[dict]) -> dict:
    """Per band and label, the count over seeds (t interval), and the paper's head-type claims judged on them."""
    counts = [r["metrics"]["classify"]["counts"] for r in runs]
    labels = counts[0]["all"].keys()
    out = {band: {label: seed_interval([c[band][label] for c in counts]) for label in labels} for band in LABEL_BANDS}
    chirp = seed_interval([r["metrics"]["classify"][f"chirp_heads_{paper.CHIRP_BAND_KEY}"] for r in runs])
    early = seed_interval([r["metrics"]["classify"][f"distractor_heads_{paper.DISTRACTOR_BAND_KEY}"] for r in runs])
    totals = runs[0]["metrics"]["classify"]
    out["claims"] = {
        "chirp_heads": chirp
        | {"verdict": paper.pooled_count_verdict(chirp, totals[f"heads_{paper.CHIRP_BAND_KEY}"]).__dict__},
        "distractor_heads": early
        | {"verdict": paper.pooled_count_verdict(early, totals[f"heads_{paper.DISTRACTOR_BAND_KEY}"]).__dict__},
    }
    return out


def causal_counts(runs: list[dict]) -> dict:
    """Per distractor kind and causal label, the count of heads over seeds (t interval)."""
    out = {}
    for kind in DISTRACTOR_KINDS:
        found = [r["metrics"]["causal"].get(kind) for r in runs]
        if any(f is None for f in found):
            continue
        keys = [k for k in found[0] if k.startswith("heads_")]
        out[kind] = {k.removeprefix("heads_"): seed_interval([f[k] for f in found]) for k in keys}
    return out


def model_summary(runs: list[dict], held: list[dict]) -> dict:
    """One model's runs: accuracy, the claims pooled per ablation mode, sds over heads, label and causal counts."""
    claims = {claim: {mode: pooled_claim(runs, claim, mode) for mode in ("mean", "zero")} for claim in CLAIM_KEYS}
    author = {
        claim: seed_interval(
            [r["metrics"]["ablate"].get(paper.AUTHOR, {}).get(CLAIM_KEYS[claim][0], np.nan) for r in runs]
        )
        for claim in ("early", "middle")
    }
    sds = {
        f"{band}_{mode}": seed_interval([r["metrics"]["ablate"][mode].get(paper.SD_KEYS[band], np.nan) for r in runs])
        for band in ("early", "middle")
        for mode in ("mean", "zero")
    }
    return {
        "seeds": [r["seed"] for r in runs],
        "r2": {t: seed_interval([r["metrics"]["finetune"][t]["r2"] for r in runs]) for t in TARGETS},
        "claims": claims,
        "author_protocol": author,
        "sd_over_heads": sds,
        "labels": label_counts(runs),
        "causal": causal_counts(runs),
        "held_out": held_out_check(claims, held),
        "seconds": seed_interval([sum(t.get("stage_seconds", 0) for t in r["timings"].values()) for r in runs]),
    }


def estimates(records: list[dict]) -> dict:
    out = {}
    for arm in ("conv", "patch"):
        runs = [r for r in records if r["arm"] == arm and not r["held_out"]]
        if len(runs) >= 2:
            out[arm] = model_summary(runs, [r for r in records if r["arm"] == arm and r["held_out"]])
            out[arm]["routes"] = pooled_routes(run_decompositions(runs))
    conv = [r for r in records if r["arm"] == "conv"]
    if len(conv) >= 3 and all("fingerprints" in r for r in conv):
        out["matching"] = head_matching(conv)
    return out


def planted(records: list[dict]) -> dict:
    """The benchmark (held-out seeds): per method and kind, the share of designated heads flagged on the planted
    arm, over the runs whose model relies on that kind's cue (a run that did not learn a cue has no truth for
    it), and the heads flagged on the control arm, with 95% Wilson and Clopper-Pearson (exact) intervals; and the
    reliance checks."""
    arms = {arm: [r for r in records if r["arm"] == arm and r["held_out"]] for arm in ("planted", "control")}
    fit = {arm: [r for r in records if r["arm"] == arm and not r["held_out"]] for arm in ("planted", "control")}
    kinds = planted_kinds(records)
    table = {}
    for method in scored_methods(records, kinds):
        for kind in kinds:
            planted = [r["metrics"]["causal"]["planted"][kind] for r in arms["planted"] if relies(r, kind)]
            controls = [r["metrics"]["causal"]["planted"][kind] for r in arms["control"]]
            table.setdefault(method, {})[kind] = benchmark_cell(planted, controls, method)
    return {
        "kinds": kinds,
        "fit": fit_counts(fit, kinds, scored_methods(records, kinds)),
        "held_out_seeds": {a: [r["seed"] for r in rs] for a, rs in arms.items()},
        "fit_seeds": {a: [r["seed"] for r in rs] for a, rs in fit.items()},
        "benchmark": table,
        "reliance": reliance(records, kinds),
    }


def benchmark_cell(planted: list[dict], controls: list[dict], method: str) -> dict:
    """One method and kind over the held-out runs: designated heads flagged on the planted arm (the runs that
    learned the cue), heads flagged on the control arm, with Wilson and Clopper-Pearson 95% intervals."""
    hits = [p["methods"][method] for p in planted]
    false = [c["methods"][method] for c in controls]
    designated = sum(len(p["designated"]) for p in planted)
    tested = sum(c["heads"] for c in controls)
    found = sum(h["designated_flagged"] for h in hits)
    flagged = [f["designated_flagged"] + f["others_flagged"] for f in false]
    return {
        "hit_rate": round(found / designated, 4) if designated else None,
        "hit_ci": proportion_interval(found, designated),
        "hit_ci_exact": proportion_interval(found, designated, "clopper-pearson"),
        "seeds_with_a_hit": sum(h["designated_flagged"] > 0 for h in hits),
        "seeds": len(hits),
        "others_flagged_planted": sum(h["others_flagged"] for h in hits),
        "false_rate_control": round(sum(flagged) / tested, 5) if tested else None,
        "false_ci_control": proportion_interval(sum(flagged), tested),
        "false_ci_control_exact": proportion_interval(sum(flagged), tested, "clopper-pearson"),
        "control_seeds_with_a_false_detection": sum(f > 0 for f in flagged),
    }


def planted_kinds(records: list[dict]) -> list[str]:
    """The kinds every run of the study plants (the frame-band study plants the frame alone)."""
    return [k for k in DISTRACTOR_KINDS if records and all(k in r["metrics"]["causal"]["planted"] for r in records)]


def relies(record: dict, kind: str) -> bool:
    """Whether a planted run's model relies on the kind's cue (mean |change| of the cued prediction, in sds)."""
    effect = record["metrics"]["causal"]["model_effect"][f"{kind}_cue"]
    return effect[f"{CUE_TARGETS[kind]}_abs_change"] >= RELIANCE_SD


def scored_methods(records: list[dict], kinds: list[str]) -> list[str]:
    """The per-head methods, and the route split where every run scored it (runs before it did not)."""
    routes = all(DECOMPOSITION in r["metrics"]["causal"]["planted"][k]["methods"] for r in records for k in kinds)
    return [*METHODS, DECOMPOSITION] if routes else list(METHODS)


def fit_counts(fit: dict[str, list[dict]], kinds: list[str], methods: list[str]) -> dict:
    """Per method and kind, on the fit seed(s): designated heads flagged on the planted arm, other heads flagged
    there, and heads flagged on the control arm (the rules were set here: a record, not a score)."""
    out = {}
    for method in methods:
        for kind in kinds:
            planted = [r["metrics"]["causal"]["planted"][kind] for r in fit["planted"] if relies(r, kind)]
            control = [r["metrics"]["causal"]["planted"][kind]["methods"][method] for r in fit["control"]]
            out.setdefault(method, {})[kind] = {
                "learned_in": len(planted),
                "designated": sum(len(p["designated"]) for p in planted),
                "designated_found": sum(p["methods"][method]["designated_flagged"] for p in planted),
                "others_planted": sum(p["methods"][method]["others_flagged"] for p in planted),
                "flagged_control": sum(c["designated_flagged"] + c["others_flagged"] for c in control),
            }
    return out


def reliance(records: list[dict], kinds: list[str]) -> dict:
    """Per arm and kind: the cued prediction's mean |change| (in sds of the target) when only the cue is swapped,
    and the cue target's test R^2."""
    out = {}
    for arm in ("planted", "control"):
        runs = [r for r in records if r["arm"] == arm]
        if not runs:  # a study gathered before its control arm has run
            continue
        for kind in kinds:
            target = CUE_TARGETS[kind]
            effects = [r["metrics"]["causal"]["model_effect"][f"{kind}_cue"] for r in runs]
            out.setdefault(arm, {})[kind] = {
                "seeds": [r["seed"] for r in runs],
                "cue_change_sd": seed_interval([e[f"{target}_abs_change"] for e in effects]),
                "cue_r2": seed_interval([r["metrics"]["finetune"][target]["r2"] for r in runs]),
                "chirp_r2": {t: seed_interval([r["metrics"]["finetune"][t]["r2"] for r in runs]) for t in TARGETS},
            }
    return out


def distortion(records: list[dict], defaults: list[dict]) -> dict:
    """Per arm: accuracy, band effects (mean ablation), label and causal counts over its seeds, and every
    comparable metric against the default configuration (vitheads.compare: Welch over both sides' runs, Holm
    over the metrics): against the estimates study's pooled runs, and against its runs queued on the arm's own
    commit (one session's queue: the same code and machine), because training differs between machines; and
    the layout's own effect: all-off with the layout adapting against all-off with the layout kept.
    defaults: the estimates study's default-model runs, pooled and held out."""
    pooled = [r for r in defaults if not r["held_out"]]
    noise = spread([comparable(r["metrics"]) for r in pooled]) if len(pooled) > 1 else {}
    noise_df = len(pooled) - 1 if len(pooled) > 1 else None
    by_arm = {arm: [r for r in records if r["arm"] == arm] for arm in dict.fromkeys(r["arm"] for r in records)}
    out = {}
    for arm, runs in by_arm.items():
        same = same_commit(defaults, runs)
        out[arm] = {
            "seeds": [r["seed"] for r in runs],
            "r2": {t: seed_interval([r["metrics"]["finetune"][t]["r2"] for r in runs]) for t in TARGETS},
            "bands": {
                c: seed_interval([r["metrics"]["ablate"]["mean"].get(CLAIM_KEYS[c][0], np.nan) for r in runs])
                for c in CLAIM_KEYS
            },
            "labels": label_counts(runs),
            "causal": causal_counts(runs),
            "seconds": seed_interval([sum(t.get("stage_seconds", 0) for t in r["timings"].values()) for r in runs]),
            "against_default": compared(pooled, runs, noise, noise_df),
            "against_default_same_commit": compared(same, runs, noise, noise_df),
            "same_commit_default_seeds": [r["seed"] for r in same],
        }
    if {"all-off", "all-off-adapting"} <= by_arm.keys():
        out["layout"] = compared(by_arm["all-off"], by_arm["all-off-adapting"], noise, noise_df)
    out["default_seeds"] = [r["seed"] for r in pooled]
    out["default_across_commits"] = compared(pooled, same_commit(defaults, records), noise, noise_df)
    return out


def same_commit(defaults: list[dict], runs: list[dict]) -> list[dict]:
    """The default-configuration runs queued on a commit that `runs` were queued on."""
    return [r for r in defaults if r["baseline"] in {run["baseline"] for run in runs}]


def compared(a: list[dict], b: list[dict], noise: dict[str, float], noise_df: int | None = None) -> list[dict]:
    """vitheads.compare's rows for B - A over two sets of run records; `noise` (sds over the default's pooled
    runs, noise_df degrees of freedom) serves where neither side's runs vary, as in the command."""
    if len(a) < 2 or len(b) < 2:
        return []
    return compare([comparable(r["metrics"]) for r in a], [comparable(r["metrics"]) for r in b], noise, 0.05, noise_df)


def correlations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[heads_a, heads_b] Pearson correlations of standardised fingerprints [heads, n*P]."""
    return (a @ b.T) / a.shape[1]


def matching_null(z: list[np.ndarray], rng: np.random.Generator) -> float:
    """The 95th percentile of the correlation of 200 random head pairs for every ordered pair of runs."""
    null = [
        correlations(z[i], z[j])[rng.integers(0, len(z[i]), 200), rng.integers(0, len(z[j]), 200)]
        for i in range(len(z))
        for j in range(len(z))
        if i != j
    ]
    return float(np.percentile(np.concatenate(null), 95))


def head_matching(runs: list[dict]) -> dict:
    """Is there, in every run, a head that does what the first run's most damaging head (mean ablation) does?
    Heads are compared by the correlation of their attention on the shared images (basis-invariant); a match
    needs a correlation above the 95th percentile of random head pairs across runs (the null)."""
    prints = [np.asarray(r["fingerprints"], float) for r in runs]  # [n, L, H, P] each
    flat = [p.transpose(1, 2, 0, 3).reshape(p.shape[1] * p.shape[2], -1) for p in prints]  # [L*H, n*P]
    z = [(f - f.mean(1, keepdims=True)) / (f.std(1, keepdims=True) + 1e-12) for f in flat]
    bar = matching_null(z, np.random.default_rng(0))
    heads = runs[0]["heads"]
    table = dict(zip(heads["columns"], zip(*heads["rows"])))
    dominant = int(np.nanargmax(np.asarray(table["increase_pct_mean"], float)))
    layers, per_layer = prints[0].shape[1], prints[0].shape[2]
    matches = []
    for run, zr in zip(runs[1:], z[1:]):
        c = correlations(z[0][dominant : dominant + 1], zr)[0]
        best = int(np.argmax(c))
        row = dict(zip(run["heads"]["columns"], run["heads"]["rows"][best]))
        matches.append(
            {
                "seed": run["seed"],
                "head": f"L{best // per_layer + 1}H{best % per_layer + 1}",
                "correlation": round(float(c[best]), 4),
                "matched": bool(c[best] > bar),
                "label": row["label"],
                "increase_pct_mean": row.get("increase_pct_mean"),
            }
        )
    name = f"L{dominant // per_layer + 1}H{dominant % per_layer + 1}"
    return {
        "reference_seed": runs[0]["seed"],
        "dominant_head": name,
        "null_95th_percentile": round(bar, 4),
        "matches": matches,
        "share_matched": round(sum(m["matched"] for m in matches) / max(1, len(matches)), 4),
        "layers": layers,
    }


def factorial(records: list[dict], simulations: int = 200, planned_seeds: tuple[int, ...] = FACTORIAL_SEEDS) -> dict:
    """The factorial study as pre-registered. Until every planned seed block has run (each on one machine): no
    effect, only the pilot rule's reading (residual variances of the first two complete blocks) and the all-on
    cells' pooled routes.
    Then the analysis (vitheads.analysis.factorial.analyse): every metric that vitheads.compare.comparable reads
    from every run (the primary ones among them), fitted over the 8 cells with a random intercept per seed, and
    the layout's contrast against the all-off-adapting cell; metrics some run lacks are listed, not fitted; and
    a power check of the pipeline: `simulations` synthetic studies of the same seeds, every primary outcome given
    a text effect of the detectable size (in residual sds; the within-seed tests do not depend on the outcome's
    scale), none for colorbar and frame."""
    rows = [
        {"seed": r["seed"], "arm": r["arm"], **FACTORIAL_CELLS.get(r["arm"], {}), **comparable(r["metrics"])}
        for r in records
    ]
    data = pd.DataFrame(rows)
    arms = {*FACTORIAL_CELLS, FACTORIAL_ADAPTING}
    blocks = [s for s in planned_seeds if complete_block(records, s, arms)]
    out = {
        "runs": len(records),
        "planned_seeds": list(planned_seeds),
        "complete_seeds": blocks,
        "routes_all_on": pooled_routes(run_decompositions([r for r in records if r["arm"] == FACTORIAL_ALL_ON])),
    }
    if len(blocks) >= 2:
        out["pilot"] = pilot_reading(data[data["seed"].isin(blocks[:2]) & data["arm"].isin(list(FACTORIAL_CELLS))])
    if blocks != list(planned_seeds):
        return out | {
            "note": f"{len(blocks)} of {len(planned_seeds)} seed blocks complete: no effect is estimated before "
            "every block has run (the pre-registration's stopping rule)"
        }
    return out | complete_analysis(data, blocks, simulations)


def complete_analysis(data: pd.DataFrame, blocks: list[int], simulations: int) -> dict:
    """The pre-registered analysis of the complete study (vitheads.study.summaries.factorial's doc)."""
    cells, layout = data[data["arm"].isin(list(FACTORIAL_CELLS))], data[data["arm"] == FACTORIAL_ADAPTING]
    metrics = [c for c in data.columns if c not in ("seed", "arm", *factorial_analysis.FACTORS)]
    complete = [m for m in metrics if cells[m].notna().all()]
    outcomes = [m for m in factorial_analysis.PRIMARY if m in complete] + [
        m for m in complete if m not in factorial_analysis.PRIMARY
    ]
    analysed = factorial_analysis.analyse(cells, outcomes, layout)
    df = len(cells) - len(blocks) - len(factorial_analysis.TERMS)
    family = max(1, len(analysed["primary_family"]))
    size = factorial_analysis.detectable(2 / np.sqrt(len(cells)), df, factorial_analysis.ALPHA / family)
    effects = {o: {"text": size} for o in factorial_analysis.PRIMARY}
    return analysed | {
        "seeds": blocks,
        "cells_run": {arm: int((cells["arm"] == arm).sum()) for arm in FACTORIAL_CELLS},
        "not_in_every_run": [m for m in metrics if m not in complete],
        "power_check": factorial_analysis.simulate_power(effects, seeds=len(blocks), simulations=simulations)
        | {"planted_text_effect_in_residual_sds": size},
    }


def pilot_reading(cells: pd.DataFrame) -> dict:
    """The pilot rule on the first two complete seed blocks: each primary outcome's residual variance only
    (vitheads.analysis.factorial.pilot; the fits' effects are not kept), and which seeds it read."""
    outcomes = [o for o in factorial_analysis.PRIMARY if o in cells and cells[o].notna().all()]
    fits = {o: factorial_analysis.fit(cells, o) for o in outcomes}
    variances = {o: {"residual_variance": f["residual_variance"]} for o, f in fits.items() if "constant" not in f}
    return factorial_analysis.pilot(variances) | {"from_seeds": sorted(int(s) for s in cells["seed"].unique())}


def routes(records: list[dict]) -> dict:
    """The route split beyond the default model: the pure ViT's routes pooled over its runs and each run's
    frame-ruler test; per planted run, the route split's score on the planted heads beside the repaired rule's
    (metrics `planted`: designated heads flagged, other heads flagged)."""
    patch = [r for r in records if r["arm"] == "patch"]
    planted_runs = [r for r in records if r["arm"].startswith("planted")]
    return {
        "runs": len(records),
        "patch_routes": pooled_routes(run_decompositions(patch)),
        "patch_ruler": {str(r["seed"]): r["metrics"]["causal"].get("frame_ruler") for r in patch},
        "planted": {
            r["name"]: {
                kind: {m: d["methods"][m] for m in (RULE, DECOMPOSITION) if m in d["methods"]}
                | {"designated": d["designated"]}
                for kind, d in r["metrics"]["causal"].get("planted", {}).items()
            }
            for r in planted_runs
        },
    }


# distortion also needs the default runs: vitheads.study.gather.summarise
SUMMARIES = {
    "estimates": estimates,
    "planted": planted,
    "frame-band": planted,
    "factorial": factorial,
    "routes": routes,
}


def run_decompositions(runs: list[dict]) -> list[dict]:
    """The route split's per-element metrics of the runs that have them (runs gathered before it have none)."""
    return [r["metrics"]["causal"]["decomposition"] for r in runs if "decomposition" in r["metrics"].get("causal", {})]


def pooled_routes(decompositions: list[dict]) -> dict:
    """Per element (variant) and target, the whole change and each route's mean pooled over training runs
    (random effects, both estimators: vitheads.analysis.pooling), from each run's metrics `decomposition`; the
    unit is the run. Only elements every run has; needs 2 runs."""
    if len(decompositions) < 2:
        return {}
    variants = set.intersection(*(set(d) for d in decompositions))
    out = {}
    for variant in sorted(variants):
        targets = [t for t, v in decompositions[0][variant].items() if isinstance(v, dict)]
        out[variant] = {}
        for target in targets:
            cells = [d[variant][target] for d in decompositions]
            quantities = {"change": "change_se"} | {f"route_{r}": f"route_{r}_se" for r in decomposition.ROUTES}
            out[variant][target] = {
                name: {
                    e: random_effects([c[name] for c in cells], [c[se] for c in cells], e).as_dict() for e in ESTIMATORS
                }
                for name, se in quantities.items()
                if all(se in c for c in cells)
            } | {"claims": [c["claim"] for c in cells]}
    return out
