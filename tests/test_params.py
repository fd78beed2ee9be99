"""params.yaml validation: bad values are refused before any work, with the key named."""

import copy

import pytest
from conftest import ROOT
from dvc.utils.serialize import load_yaml

from vitheads import params
from vitheads.params import ParamsError

GOOD = params.read_yaml((ROOT / "params.yaml").read_text())


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
    with pytest.raises(
        ParamsError, match=r"unknown parameter 'distortion.colorbarr'; did you mean 'distortion.colorbar'"
    ):
        params.validate(p)


def test_unknown_section_is_refused():
    p = copy.deepcopy(GOOD)
    p["distorsion"] = {}
    with pytest.raises(ParamsError, match=r"'distorsion'; did you mean 'distortion'"):
        params.validate(p)


@pytest.mark.parametrize(
    "section, key, value, kind, words",
    [
        ("generate", "n_train", "many", "text", "an integer >= 1"),
        ("generate", "n_test", 0, "an integer", "an integer >= 1"),
        ("model", "image_size", 8, "an integer", r"an integer in \[32, 1024\]"),
        ("model", "image_size", 160.0, "a float", "an integer"),
        ("distortion", "title", 1, "an integer", "true or false"),
        ("distortion", "colorbar", "no", "text", "true or false"),
        ("finetune", "lr", None, r"empty \(null\)", "a number"),
        ("seed", None, -1, "an integer", "an integer"),
    ],
)
def test_bad_values_name_the_key_its_type_and_what_is_allowed(section, key, value, kind, words):
    name = section if key is None else f"{section}.{key}"
    with pytest.raises(ParamsError, match=rf"parameter '{name}' is {value!r} \({kind}\); expected {words}"):
        params.validate(with_value(section, key, value))


@pytest.mark.parametrize(
    "written, value", [("1e-4", 1e-4), ("3E-4", 3e-4), ("1.5e-3", 1.5e-3), ("+2e-2", 2e-2), ("5", 5)]
)
def test_hand_written_numbers_read_as_dvc_reads_them(tmp_path, written, value):
    """YAML 1.2, as DVC's ruamel reader: PyYAML's 1.1 rules would make '1e-4' a string."""
    path = tmp_path / "params.yaml"
    path.write_text((ROOT / "params.yaml").read_text().replace("  lr: 0.002", f"  lr: {written}"))
    assert params.load(path)["finetune"]["lr"] == value == load_yaml(path)["finetune"]["lr"]


def test_a_quoted_number_is_refused_as_text(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text((ROOT / "params.yaml").read_text().replace("  lr: 0.002", "  lr: '1e-4'"))
    with pytest.raises(ParamsError, match=r"parameter 'finetune.lr' is '1e-4' \(text\); expected a number"):
        params.load(path)


def test_missing_key_is_refused():
    p = copy.deepcopy(GOOD)
    del p["generate"]["n_test"]
    with pytest.raises(ParamsError, match=r"generate\.n_test"):
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
        (
            {"model": {"embed_dim": 100, "num_heads": 12}},
            r"model.embed_dim \(100\) must be divisible by model.num_heads \(12\)",
        ),
        (
            {"model": {"stem": "conv", "patch_size": 12, "image_size": 120}},
            r"model.stem 'conv' needs a power-of-two model.patch_size",
        ),
        ({"finetune": {"val_fraction": 0.0001}}, r"finetune.val_fraction \(0.0001\) .* gives 0 validation images"),
        (
            {"classify": {"importance_mode": "mean"}, "ablate": {"modes": ["zero"]}},
            r"classify.importance_mode \(mean\) must be one of ablate.modes",
        ),
        ({"causal": {"images": 700}}, r"causal.images \(700\) must be at most generate.n_test \(600\)"),
        ({"causal": {"images": 20, "patch_images": 30}}, r"causal.patch_images \(30\) at most causal.images"),
        ({"plant": {"cues": ["text"]}, "model": {"pooling": "avg"}}, r"plant.cues need model.pooling 'flatten'"),
        ({"plant": {"control": True}}, r"plant.control shuffles the planted cues: it needs plant.cues"),
        ({"plant": {"cues": ["text"], "frame_cue": "band"}}, r"plant.frame_cue 'band' .*: plant.cues lacks frame"),
    ],
)
def test_impossible_combinations_are_refused(changes, words):
    p = copy.deepcopy(GOOD)
    for section, values in changes.items():
        p[section].update(values)
    with pytest.raises(ParamsError, match=words):
        params.validate(p)
