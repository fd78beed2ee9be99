"""The factorial study's analysis, as pre-registered (study/factorial-preregistration.md): per outcome a linear
mixed model with a random intercept per seed (statsmodels MixedLM, REML), main effects and two-way interactions of
text, colorbar and frame coded -1 (off) / +1 (on); t tests on the seed-blocked design's residual df (MixedLM's
normal tail would be too liberal with 8 seeds); Holm over the primary outcomes' main effects, Benjamini-Hochberg
over everything else; the difference detectable at 80% power beside every estimate; and a simulated power check
of the whole pipeline on synthetic data with planted effects.

Effects are on - off differences: a main effect averaged over the other two factors (2 x its coefficient), a
two-way interaction as the change of one factor's on - off difference when the other is switched on (4 x its
coefficient). Data: one row per run, columns seed, text, colorbar, frame (0 off / 1 on) and the outcomes.
"""

from __future__ import annotations

import gc
import warnings

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.regression.mixed_linear_model import MixedLM

from vitheads.analysis.stats import benjamini_hochberg, holm

FACTORS = ("text", "colorbar", "frame")
INTERACTIONS = (("text", "colorbar"), ("text", "frame"), ("colorbar", "frame"))
TERMS = (*FACTORS, *(f"{a}:{b}" for a, b in INTERACTIONS))
ALPHA, POWER = 0.05, 0.80
R2_MEAN = "R2 mean over targets"  # vitheads.compare.comparable's name for the mean test R^2 over the targets
# The primary outcomes (names as vitheads.compare.comparable gives them) and their equivalence bounds.
PRIMARY = {
    R2_MEAN: 0.02,
    "mean ablation: layers 1-3 (%)": 0.17,
    "mean ablation: layer 6 (%)": 0.17,
    "heads labelled chirp, layers_6-11": 7.0,
}


def detectable(se: float, df: float, level: float, power: float = POWER) -> float:
    """The difference a two-sided t test at `level` with df degrees of freedom detects with probability `power`:
    (t(1 - level / 2) + t(power)) x se."""
    return float((stats.t.ppf(1 - level / 2, df) + stats.t.ppf(power, df)) * se)


def design(data: pd.DataFrame) -> np.ndarray:
    """[n, 7] fixed-effect design: intercept, the factors coded -1 / +1, their two-way products."""
    coded = {f: 2 * data[f].to_numpy(float) - 1 for f in FACTORS}
    return np.column_stack([np.ones(len(data)), *coded.values(), *(coded[a] * coded[b] for a, b in INTERACTIONS)])


def fit(data: pd.DataFrame, outcome: str) -> dict:
    """One outcome's mixed model: per term (TERMS) the on - off difference, its se, t, p, 95% and 90% intervals
    and df; the seed and residual variances. An outcome with one value in every run is returned as constant."""
    rows = data.dropna(subset=[outcome])
    y = rows[outcome].to_numpy(float)
    seeds = rows["seed"].to_numpy()
    if np.all(y == y[0]):
        return {"outcome": outcome, "constant": float(y[0]), "runs": len(y)}
    df = len(y) - len(np.unique(seeds)) - len(TERMS)  # within-seed residual df (n - seeds - 6)
    if df < 1:
        raise ValueError(f"outcome {outcome!r}: {len(y)} runs on {len(np.unique(seeds))} seeds leave no residual df")
    with warnings.catch_warnings():  # a seed variance at its boundary (0) warns; the fixed effects stand
        warnings.simplefilter("ignore")
        result = MixedLM(y, design(rows), groups=seeds).fit(reml=True)
        coefficients, errors = np.asarray(result.fe_params), np.asarray(result.bse_fe)  # [7] each
    terms = {}
    for i, term in enumerate(TERMS, start=1):
        scale = 2 if term in FACTORS else 4
        estimate, se = scale * float(coefficients[i]), scale * float(errors[i])
        se = se if np.isfinite(se) else 0.0  # no residual noise at all: the design fixes the outcome
        t95, t90 = float(stats.t.ppf(0.975, df)), float(stats.t.ppf(0.95, df))
        terms[term] = {
            "estimate": estimate,
            "se": se,
            "t": estimate / se if se else None,
            "p": float(2 * stats.t.sf(abs(estimate / se), df)) if se else float(abs(estimate) < 1e-12),
            "ci": [estimate - t95 * se, estimate + t95 * se],
            "ci90": [estimate - t90 * se, estimate + t90 * se],
        }
    return {
        "outcome": outcome,
        "runs": len(y),
        "seeds": len(np.unique(seeds)),
        "df": df,
        "seed_variance": float(np.asarray(result.cov_re)[0, 0]),
        "residual_variance": float(result.scale),
        "terms": terms,
    }


def paired(data: pd.DataFrame, outcome: str, before: pd.Series, after: pd.Series) -> dict | None:
    """The mean over seeds of after - before (rows selected by two masks of `data`, matched by seed), with its
    paired t interval and p; None with fewer than 2 seeds holding both."""
    a = data[before].set_index("seed")[outcome]
    b = data[after].set_index("seed")[outcome]
    d = (b - a).dropna()
    if len(d) < 2:
        return None
    mean, se, df = float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d))), len(d) - 1
    if se == 0:
        return {"estimate": mean, "se": 0.0, "df": df, "p": float(mean == 0), "ci": [mean, mean], "seeds": len(d)}
    half = stats.t.ppf(0.975, df) * se
    p = float(2 * stats.t.sf(abs(mean) / se, df))
    return {"estimate": mean, "se": se, "df": df, "p": p, "ci": [mean - half, mean + half], "seeds": len(d)}


def analyse(data: pd.DataFrame, outcomes: list[str], layout: pd.DataFrame | None = None) -> dict:
    """The pre-registered analysis. data: the 8 cells' runs; outcomes: every outcome to fit (the PRIMARY ones
    among them form the primary family); layout: the all-off runs with the layout adapting (the layout's contrast
    against data's all-off cell, paired by seed). Returns per outcome its fit with each term's family
    ("primary" or "exploratory"), whether it is flagged after its family's correction, the difference it could
    detect at 80% power (level alpha / family size for the primary family, alpha otherwise) and, for a primary
    main effect, the verdict; the layout's contrasts; the constant outcomes, listed."""
    fits = {o: fit(data, o) for o in outcomes}
    constant = {o: f["constant"] for o, f in fits.items() if "constant" in f}
    tests = [
        (o, term, fits[o]["terms"][term], "primary" if o in PRIMARY and term in FACTORS else "exploratory")
        for o in outcomes
        if o not in constant
        for term in TERMS
    ]
    contrasts = {}
    if layout is not None and len(layout):
        both = pd.concat([data.assign(adapting=False), layout.assign(adapting=True)])
        all_off = (both[list(FACTORS)] == 0).all(axis=1)
        for o in outcomes:
            entry = paired(both, o, all_off & ~both["adapting"], both["adapting"])
            if entry is not None and o not in constant:
                contrasts[o] = entry
                tests.append((o, "layout: adapting - kept", entry, "exploratory"))
    for family, correction in (("primary", holm), ("exploratory", benjamini_hochberg)):
        chosen = [t for t in tests if t[3] == family]
        flagged = correction(np.array([t[2]["p"] for t in chosen]), ALPHA)
        level = ALPHA / max(1, len(chosen)) if family == "primary" else ALPHA
        for (o, _, entry, _), f in zip(chosen, flagged):
            df = entry.get("df", fits[o].get("df"))
            entry |= {"family": family, "flagged": bool(f), "detectable": detectable(entry["se"], df, level)}
            if family == "primary":
                entry["verdict"] = verdict(entry, PRIMARY[o])
    return {
        "fits": {o: f for o, f in fits.items() if o not in constant},
        "layout": contrasts,
        "constant": constant,
        "primary_family": [f"{o}: {term}" for o, term, _, family in tests if family == "primary"],
        "alpha": ALPHA,
        "power": POWER,
    }


def verdict(entry: dict, bound: float) -> str:
    """A primary main effect: "changes" when Holm flags it, "no effect" when its 90% interval lies inside
    +-bound (two one-sided tests at 5%), "inconclusive" otherwise."""
    if entry["flagged"]:
        return "changes"
    low, high = entry["ci90"]
    return "no effect" if -bound <= low and high <= bound else "inconclusive"


def pilot(fits: dict[str, dict], seeds: tuple[int, ...] = (8, 12), family: int = 12) -> dict:
    """The pilot rule (pre-registration): from each primary outcome's residual variance alone (never an effect),
    the main effect's difference detectable at 80% power, level alpha / family, with 8 and with 12 complete seed
    blocks, against the outcome's equivalence bound; 12 seeds when it exceeds the bound at 8 for any of the first
    three primary outcomes (the head count is expected to be underpowered either way)."""
    out = {}
    for outcome, bound in PRIMARY.items():
        if outcome not in fits:
            continue
        residual = fits[outcome]["residual_variance"]
        sizes = {
            str(k): detectable(2 * np.sqrt(residual / (8 * k)), 8 * k - k - len(TERMS), ALPHA / family) for k in seeds
        }
        out[outcome] = {"bound": bound, "detectable_at": sizes, "within_bound_at_8": sizes["8"] <= bound}
    rule = [o for o in list(PRIMARY)[:3] if o in out]
    return out | {"run_12_seeds": any(not out[o]["within_bound_at_8"] for o in rule)}


def synthetic(
    effects: dict[str, dict[str, float]], seeds: int, seed_sd: float, residual_sd: float, rng: np.random.Generator
) -> pd.DataFrame:
    """A synthetic factorial: every seed's 8 cells, each outcome = its planted on - off differences per term
    (effects[outcome][term], terms as TERMS) + a seed intercept (sd seed_sd) + residual noise (sd residual_sd)."""
    cells = [dict(zip(FACTORS, levels)) for levels in np.ndindex(2, 2, 2)]
    data = pd.DataFrame([{"seed": s, **c} for s in range(seeds) for c in cells])
    x = design(data)[:, 1:]  # [n, 6] coded terms
    for outcome, planted in effects.items():
        beta = np.array([planted.get(t, 0.0) / (2 if t in FACTORS else 4) for t in TERMS])
        intercepts = rng.normal(0.0, seed_sd, seeds)[data["seed"]]
        data[outcome] = x @ beta + intercepts + rng.normal(0.0, residual_sd, len(data))
    return data


def simulate_power(
    effects: dict[str, dict[str, float]],
    seeds: int = 8,
    seed_sd: float = 1.0,
    residual_sd: float = 1.0,
    simulations: int = 200,
    rng_seed: int = 0,
) -> dict:
    """The whole pipeline (fit, t tests, Holm over the primary family) on `simulations` synthetic studies with the
    planted effects (outcomes named as PRIMARY's to be in the primary family): each primary main effect's share
    of studies flagging it (its power, or its false-positive rate where nothing is planted), and the share of
    studies flagging any primary main effect where none is planted (the family-wise error rate)."""
    if simulations < 1:
        raise ValueError(f"simulations={simulations}: at least 1")
    rng = np.random.default_rng(rng_seed)
    flagged = {(o, f): 0 for o in effects if o in PRIMARY for f in FACTORS}
    if not flagged:
        raise ValueError(f"effects: name at least one primary outcome ({sorted(PRIMARY)})")
    null = [key for key in flagged if effects[key[0]].get(key[1], 0.0) == 0.0]
    any_false = 0
    gc.freeze()  # statsmodels' Holm calls gc.collect() every time: 0.1 s over the objects alive, none when frozen
    try:
        for _ in range(simulations):
            result = analyse(synthetic(effects, seeds, seed_sd, residual_sd, rng), list(effects))
            fits = result["fits"]
            hits = {(o, f) for o in fits for f in FACTORS if fits[o]["terms"][f].get("flagged")}
            for key in flagged:
                flagged[key] += key in hits
            any_false += any(key in hits for key in null)
    finally:
        gc.unfreeze()
    return {
        "simulations": simulations,
        "seeds": seeds,
        "flagged": {f"{o}: {f}": n / simulations for (o, f), n in flagged.items()},
        "familywise_error": any_false / simulations if null else None,
    }
