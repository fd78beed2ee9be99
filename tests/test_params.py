"""params.yaml validation: bad values are refused before any work, with the key named."""

import copy

import pytest
import yaml

from conftest import ROOT
from vitheads import params
from vitheads.params import ParamsError

GOOD = yaml.safe_load((ROOT / "params.yaml").read_text())


def with_value(section: str, key: str | None, value):
    p = copy.deepcopy(GOOD)
    if key is None:
        p[section] = value
    else:
        p[section][key] = value
    return p


def test_committed_params_are_valid():
    assert params.load(ROOT / "params.yaml") == GOOD


def test_typo_is_refused_with_the_nearest_key():
    p = copy.deepcopy(GOOD)
    p["distortion"]["colorbarr"] = False
    with pytest.raises(ParamsError, match=r"unknown parameter 'distortion.colorbarr'; did you mean 'distortion.colorbar'"):
        params.validate(p)


def test_unknown_section_is_refused():
    p = copy.deepcopy(GOOD)
    p["distorsion"] = {}
    with pytest.raises(ParamsError, match=r"'distorsion'; did you mean 'distortion'"):
        params.validate(p)


@pytest.mark.parametrize(
    "section, key, value, words",
    [
        ("generate", "n_train", "many", "an integer >= 1"),
        ("generate", "n_test", 0, "an integer >= 1"),
        ("model", "image_size", 8, r"an integer in \[32, 1024\]"),
        ("model", "image_size", 160.0, "an integer"),
        ("distortion", "title", 1, "true or false"),
        ("distortion", "colorbar", "no", "true or false"),
        ("seed", None, -1, "an integer"),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(section, key, value, words):
    name = section if key is None else f"{section}.{key}"
    with pytest.raises(ParamsError, match=rf"parameter '{name}' is {value!r}; expected {words}"):
        params.validate(with_value(section, key, value))


def test_missing_key_is_refused():
    p = copy.deepcopy(GOOD)
    del p["generate"]["n_test"]
    with pytest.raises(ParamsError, match="generate.n_test"):
        params.validate(p)


def test_image_size_must_be_a_whole_number_of_patches():
    with pytest.raises(ParamsError, match=r"model.image_size \(100\).*model.patch_size \(16\)"):
        params.validate(with_value("model", "image_size", 100))


def test_unreadable_yaml_is_refused(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("seed: [1,\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        params.load(path)


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"model": {"embed_dim": 100, "num_heads": 12}}, r"model.embed_dim \(100\) must be divisible by model.num_heads \(12\)"),
        ({"model": {"stem": "conv", "patch_size": 12, "image_size": 120}}, r"model.stem 'conv' needs a power-of-two model.patch_size"),
        ({"finetune": {"val_fraction": 0.0001}}, r"finetune.val_fraction \(0.0001\) .* gives 0 validation images"),
        ({"classify": {"importance_mode": "mean"}, "ablate": {"modes": ["zero"]}}, r"classify.importance_mode \(mean\) must be one of ablate.modes"),
    ],
)
def test_impossible_combinations_are_refused(changes, words):
    p = copy.deepcopy(GOOD)
    for section, values in changes.items():
        p[section].update(values)
    with pytest.raises(ParamsError, match=words):
        params.validate(p)
