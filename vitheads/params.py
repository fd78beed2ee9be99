"""The one loader of params.yaml: every key is checked against a schema before any work starts."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from vitheads.outputs import StageError


class ParamsError(StageError):
    """A params.yaml value that the pipeline refuses; the message names the key."""


@dataclass(frozen=True)
class Rule:
    """What one key accepts: a check and the words that describe it to the user."""

    allowed: str
    check: Callable[[Any], bool]


def integer(low: int, high: int | None = None) -> Rule:
    bound = f">= {low}" if high is None else f"in [{low}, {high}]"
    return Rule(
        f"an integer {bound}",
        lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low and (high is None or v <= high),
    )


def boolean() -> Rule:
    return Rule("true or false", lambda v: isinstance(v, bool))


SCHEMA: dict[str, dict[str, Rule] | Rule] = {
    "seed": integer(0, 2**32 - 1),
    "distortion": {
        "title": boolean(),
        "axis_labels": boolean(),
        "tick_labels": boolean(),
        "colorbar": boolean(),
        "frame": boolean(),
    },
    "generate": {
        "image_size": integer(32, 1024),
        "n_train": integer(1),
        "n_test": integer(1),
    },
    "model": {
        "patch_size": integer(2, 64),
    },
}


def _unknown(key: str, valid: list[str]) -> ParamsError:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return ParamsError(f"unknown parameter '{key}'{hint} (valid here: {', '.join(sorted(valid))})")


def _check_value(key: str, value: Any, rule: Rule) -> None:
    if not rule.check(value):
        raise ParamsError(f"parameter '{key}' is {value!r}; expected {rule.allowed}")


def _check_section(name: str, section: Any, rules: dict[str, Rule]) -> None:
    if not isinstance(section, dict):
        raise ParamsError(f"parameter section '{name}' must be a mapping of keys, got {section!r}")
    for key, value in section.items():
        if key not in rules:
            raise _unknown(f"{name}.{key}", [f"{name}.{k}" for k in rules])
        _check_value(f"{name}.{key}", value, rules[key])
    missing = sorted(set(rules) - set(section))
    if missing:
        raise ParamsError(f"parameter section '{name}' lacks {', '.join(f'{name}.{k}' for k in missing)}")


def _check_combinations(p: dict[str, Any]) -> None:
    size, patch = p["generate"]["image_size"], p["model"]["patch_size"]
    if size % patch:
        raise ParamsError(
            f"generate.image_size ({size}) must be divisible by model.patch_size ({patch}) "
            "so that every token is one whole image patch"
        )


def validate(p: Any) -> dict[str, Any]:
    """Check a parsed params mapping against SCHEMA; return it unchanged or raise ParamsError."""
    if not isinstance(p, dict):
        raise ParamsError(f"params must be a mapping of sections, got {type(p).__name__}")
    for name, value in p.items():
        if name not in SCHEMA:
            raise _unknown(name, list(SCHEMA))
        rule = SCHEMA[name]
        if isinstance(rule, Rule):
            _check_value(name, value, rule)
        else:
            _check_section(name, value, rule)
    missing = sorted(set(SCHEMA) - set(p))
    if missing:
        raise ParamsError(f"params lack the section(s) {', '.join(missing)}")
    _check_combinations(p)
    return p


def load(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Read and validate params.yaml (yaml.safe_load: ten times cheaper than dvc.api.params_show)."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"params file '{path}' not found; run from the project root")
    with path.open() as f:
        try:
            parsed = yaml.safe_load(f)
        except yaml.YAMLError as err:
            raise ParamsError(f"params file '{path}' is not valid YAML: {err}") from None
    return validate(parsed)
