"""The one loader of params.yaml: every key is checked against a schema before any work starts."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML, YAMLError

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


def number(low: float, high: float, *, low_open: bool = False) -> Rule:
    bracket = "(" if low_open else "["

    def check(v: Any) -> bool:
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v != v:
            return False
        return (v > low if low_open else v >= low) and v <= high

    return Rule(f"a number in {bracket}{low}, {high}]", check)


def choice(*options: str) -> Rule:
    return Rule(f"one of {', '.join(options)}", lambda v: v in options)


def subset(*options: str) -> Rule:
    return Rule(
        f"a non-empty list drawn from {', '.join(options)}",
        lambda v: isinstance(v, list) and bool(v) and all(o in options for o in v) and len(set(v)) == len(v),
    )


def sublist(*options: str) -> Rule:
    return Rule(
        f"a list (possibly empty) drawn from {', '.join(options)}",
        lambda v: isinstance(v, list) and all(o in options for o in v) and len(set(v)) == len(v),
    )


def scratch_or_checkpoint() -> Rule:
    return Rule(
        "'scratch' or the path of a .safetensors/.pth/.pt checkpoint",
        lambda v: isinstance(v, str) and (v == "scratch" or v.endswith((".safetensors", ".pth", ".pt"))),
    )


SCHEMA: dict[str, dict[str, Rule] | Rule] = {
    "seed": integer(0, 2**32 - 1),
    "distortion": {
        "title": boolean(),
        "axis_labels": boolean(),
        "tick_labels": boolean(),
        "colorbar": boolean(),
        "frame": boolean(),
        "keep_layout": boolean(),
    },
    "plant": {
        "cues": sublist("text", "colorbar", "frame"),
        "control": boolean(),
        "frame_cue": choice("tick", "band"),
    },
    "data": {
        "source": Rule(
            "'generate' or the path of a folder of spectrogram_<i>.png files and labels.csv",
            lambda v: isinstance(v, str) and v.strip() != "",
        ),
    },
    "generate": {
        "n_train": integer(1),
        "n_test": integer(1),
    },
    "model": {
        "image_size": integer(32, 1024),
        "patch_size": integer(2, 64),
        "depth": integer(1, 48),
        "num_heads": integer(1, 64),
        "embed_dim": integer(8, 4096),
        "mlp_ratio": number(0.25, 16),
        "pooling": choice("flatten", "token", "avg"),
        "stem": choice("patch", "conv"),
        "init": scratch_or_checkpoint(),
    },
    "finetune": {
        "method": choice("full", "lora"),
        "lora_rank": integer(1, 1024),
        "lora_alpha": number(0, 1e6, low_open=True),
        "lora_targets": subset("qkv", "proj", "fc1", "fc2"),
        "lr": number(0, 1e30, low_open=True),
        "weight_decay": number(0, 10),
        "adam_beta2": number(0.5, 1, low_open=True),
        "batch_size": integer(1),
        "epochs": integer(1),
        "warmup_fraction": number(0, 0.5),
        "clip_grad": number(0, 1e6, low_open=True),
        "val_fraction": number(0, 0.5, low_open=True),
        "patience": integer(1),
        "precision": choice("fp32", "bf16"),
        "fused_optimizer": boolean(),
        "channels_last": boolean(),
    },
    "ablate": {
        "modes": subset("zero", "mean"),
        "bootstrap": integer(10),
        "mean_images": integer(0),
        "zero_images": integer(0),
        "batch_size": integer(1),
        "author_protocol": boolean(),
        "author_images": integer(0),
    },
    "attention": {
        "batch_size": integer(1),
        "max_images": integer(0),
        "example_images": integer(1, 64),
    },
    "causal": {
        "images": integer(2),
        "patch_images": integer(0),
        "batch_size": integer(1),
        "bootstrap": integer(10),
        "min_response": number(0, 1e6),
        "min_follow": number(0, 1e6),
        "min_prediction_change": number(0, 1e6),
        "relative_change": number(0, 1),
        "fdr": number(0, 1, low_open=True),
        "patch_screen": number(0, 1),
        "kv_patching": boolean(),
        "controls": boolean(),
        "min_auroc": number(0.5, 1),
        "min_rollout": number(0, 1),
    },
    "figures": {
        "overlay_images": integer(1, 16),
        "overlay_heads": integer(1, 16),
    },
    "classify": {
        "view": choice("received", "from_chirp", "cls"),
        "min_enrichment": number(1, 1e6),
        "min_excess_share": number(0, 1),
        "null_ratio": number(1, 1e6),
        "mono_share": number(0.5, 1, low_open=True),
        "sink_enrichment": number(1, 1e6, low_open=True),
        "local_ratio": number(0, 1),
        "diffuse_entropy": number(0, 1),
        "bootstrap": integer(10),
        "importance_mode": choice("zero", "mean"),
    },
}


def _unknown(key: str, valid: list[str]) -> ParamsError:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return ParamsError(f"unknown parameter '{key}'{hint} (valid here: {', '.join(sorted(valid))})")


KIND_NAMES = {str: "text", bool: "a boolean", int: "an integer", float: "a float", list: "a list", dict: "a mapping"}


def kind_of(value: Any) -> str:
    """The YAML type of a value in words: a quoted or 1.1-style number reads as text, and says so."""
    return "empty (null)" if value is None else KIND_NAMES.get(type(value), type(value).__name__)


def _check_value(key: str, value: Any, rule: Rule) -> None:
    if not rule.check(value):
        raise ParamsError(f"parameter '{key}' is {value!r} ({kind_of(value)}); expected {rule.allowed}")


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
    m = p["model"]
    if p["plant"]["control"] and not p["plant"]["cues"]:
        raise ParamsError("plant.control shuffles the planted cues: it needs plant.cues (now empty)")
    if p["plant"]["frame_cue"] != "tick" and "frame" not in p["plant"]["cues"]:
        form = p["plant"]["frame_cue"]
        raise ParamsError(f"plant.frame_cue '{form}' is the frame cue's form: plant.cues lacks frame")
    if p["plant"]["cues"] and p["data"]["source"] != "generate":
        raise ParamsError(f"plant.cues are drawn by the renderer; data.source is '{p['data']['source']}'")
    if p["plant"]["cues"] and p["model"]["pooling"] != "flatten":
        raise ParamsError(
            f"plant.cues need model.pooling 'flatten' (now '{p['model']['pooling']}'): only the flatten readout "
            "can be kept off the cue tokens, which makes the designated heads the cues' only path"
        )
    if m["image_size"] % m["patch_size"]:
        raise ParamsError(
            f"model.image_size ({m['image_size']}) must be divisible by model.patch_size ({m['patch_size']}) "
            "so that every token is one whole image patch"
        )
    if m["stem"] == "conv" and (m["patch_size"] & (m["patch_size"] - 1) or m["patch_size"] < 4):
        raise ParamsError(f"model.stem 'conv' needs a power-of-two model.patch_size >= 4, got {m['patch_size']}")
    if m["embed_dim"] % m["num_heads"]:
        raise ParamsError(
            f"model.embed_dim ({m['embed_dim']}) must be divisible by model.num_heads ({m['num_heads']}) "
            "so that every head gets an equal slice"
        )
    if p["classify"]["importance_mode"] not in p["ablate"]["modes"]:
        raise ParamsError(
            f"classify.importance_mode ({p['classify']['importance_mode']}) must be one of ablate.modes "
            f"({p['ablate']['modes']})"
        )
    if p["classify"]["view"] == "cls" and m["pooling"] != "token":
        raise ParamsError(
            f"classify.view 'cls' scores the CLS token's attention, which model.pooling '{m['pooling']}' never reads "
            "directly (later layers read CLS only as a key and value): the labels would describe a view the readout "
            "does not read; use classify.view 'received' or "
            "'from_chirp'"
        )
    if p["figures"]["overlay_images"] > p["attention"]["example_images"]:
        raise ParamsError(
            f"figures.overlay_images ({p['figures']['overlay_images']}) must be at most attention.example_images "
            f"({p['attention']['example_images']}): the overlays draw the images whose maps attention kept"
        )
    c = p["causal"]
    if (p["data"]["source"] == "generate" and c["images"] > p["generate"]["n_test"]) or c["patch_images"] > c["images"]:
        raise ParamsError(
            f"causal.images ({c['images']}) must be at most generate.n_test ({p['generate']['n_test']}) and "
            f"causal.patch_images ({c['patch_images']}) at most causal.images: pairs are rendered from the test split"
        )
    n_val = int(p["generate"]["n_train"] * p["finetune"]["val_fraction"])
    if not 1 <= n_val < p["generate"]["n_train"]:
        raise ParamsError(
            f"finetune.val_fraction ({p['finetune']['val_fraction']}) of generate.n_train "
            f"({p['generate']['n_train']}) gives {n_val} validation images; expected at least 1 and fewer than n_train"
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


def read_yaml(text: str) -> Any:
    """Parse YAML as DVC does (ruamel, YAML 1.2, safe): `1e-4` is a number here and in `dvc params diff`."""
    return YAML(typ="safe").load(text)


def load(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Read and validate params.yaml (a direct read: ten times cheaper than dvc.api.params_show)."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"params file '{path}' not found; run from the project root")
    try:
        parsed = read_yaml(path.read_text())
    except YAMLError as err:
        raise ParamsError(f"params file '{path}' is not valid YAML: {err}") from None
    return validate(parsed)
