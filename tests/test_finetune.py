"""finetune: checkpoints in and out, LoRA, the training loop's guards, and the stage under DVC."""

import json
import os

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TINY_MODEL
from safetensors.torch import save_file
from timm.layers import resample_abs_pos_embed
from timm.models.vision_transformer import VisionTransformer

from vitheads.model.training import apply_lora, split_indices, train
from vitheads.model.vit import build_model, load_pretrained, load_trained, predict, save_trained
from vitheads.outputs import StageError

MODEL = {**TINY_MODEL, "depth": 2}
FINETUNE = {
    "method": "full",
    "lora_rank": 4,
    "lora_alpha": 8,
    "lora_targets": ["qkv"],
    "lr": 1e-2,
    "weight_decay": 0.0,
    "adam_beta2": 0.999,
    "batch_size": 4,
    "epochs": 2,
    "warmup_fraction": 0.0,
    "clip_grad": 1.0,
    "val_fraction": 0.25,
    "patience": 5,
    "precision": "fp32",
    "fused_optimizer": True,
    "channels_last": True,
}


def tiny_model(seed=0, **changes):
    torch.manual_seed(seed)
    return build_model({**MODEL, **changes}, 3)


def random_images(n=16, size=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def randomise_head(model):
    torch.nn.init.normal_(model.head.weight, std=0.05)  # the flatten head starts at zero
    return model


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_saved_checkpoint_loads_back_through_model_init(tmp_path, suffix):
    trained = randomise_head(tiny_model(seed=1))
    path = tmp_path / f"ckpt{suffix}"
    state = trained.state_dict()
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save(state, path)

    fresh = tiny_model(seed=2)
    assert load_pretrained(fresh, path) == []
    images = random_images()
    np.testing.assert_array_equal(predict(fresh, images), predict(trained, images))


def test_trained_model_round_trips_with_its_config(tmp_path):
    model = randomise_head(tiny_model())
    save_trained(model, {"model": MODEL, "targets": ["a", "b", "c"]}, tmp_path)
    loaded, config = load_trained(tmp_path)
    assert config["targets"] == ["a", "b", "c"]
    images = random_images()
    np.testing.assert_array_equal(predict(loaded, images), predict(model, images))


def test_timm_published_state_dict_loads_into_another_image_size(tmp_path):
    torch.manual_seed(0)
    published = VisionTransformer(
        img_size=16, patch_size=8, embed_dim=24, depth=2, num_heads=3, mlp_ratio=2.0, num_classes=1000
    )
    path = tmp_path / "vit_published.pth"
    torch.save(published.state_dict(), path)  # how timm's hub weights look: a plain state dict, ImageNet head

    model = tiny_model(seed=5)  # 32 px: a 4x4 grid where the checkpoint has 2x2
    left = load_pretrained(model, path)
    assert sorted(left) == ["head.bias", "head.weight"]
    expected = resample_abs_pos_embed(published.pos_embed, new_size=(4, 4), old_size=(2, 2), num_prefix_tokens=1)
    assert model.pos_embed.shape == (1, 17, 24)
    torch.testing.assert_close(model.pos_embed, expected)
    assert torch.equal(model.blocks[1].attn.qkv.weight, published.blocks[1].attn.qkv.weight)


def test_checkpoint_of_another_architecture_is_refused_with_the_keys(tmp_path):
    path = tmp_path / "deeper.safetensors"
    save_file(tiny_model(depth=3).state_dict(), str(path))
    with pytest.raises(StageError, match=r"does not fit model.*unexpected, e.g. \['blocks.2"):
        load_pretrained(tiny_model(), path)


class CarriesCode:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_pickle_checkpoint_carrying_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"pos_embed": CarriesCode()}, path)
    with pytest.raises(StageError, match=r"refusing to load .*evil\.pth.*not a plain state dict"):
        load_pretrained(tiny_model(), path)


def test_missing_checkpoint_names_the_param(tmp_path):
    with pytest.raises(StageError, match=r"model\.init checkpoint .*nope\.safetensors' not found"):
        load_pretrained(tiny_model(), tmp_path / "nope.safetensors")


def training_data(n=16):
    images = random_images(n)
    z = np.random.default_rng(1).standard_normal((n, 3)).astype(np.float32)
    return images, z, split_indices(n, FINETUNE["val_fraction"], 0)


def test_lora_trains_only_the_adapters_and_the_head():
    model = tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    net = apply_lora(model, {**FINETUNE, "method": "lora"})
    trainable = {name for name, p in net.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name or ".head." in name for name in trainable)
    assert any("blocks.0.attn.qkv.lora_A" in name for name in trainable)

    images, z, rows = training_data()
    train(net, images, z, rows, {**FINETUNE, "method": "lora"}, seed=0)
    for name, p in net.named_parameters():
        if not p.requires_grad:
            stem = name.replace("base_model.model.", "").replace(".base_layer", "").replace(".original_module", "")
            assert torch.equal(p, before[stem]), name
        elif "lora_B" in name or "modules_to_save" in name:
            assert p.abs().sum() > 0, name  # both start at zero
    merged = net.merge_and_unload()
    assert not torch.equal(merged.blocks[0].attn.qkv.weight, before["blocks.0.attn.qkv.weight"])
    assert torch.equal(merged.blocks[0].mlp.fc1.weight, before["blocks.0.mlp.fc1.weight"])


def test_training_is_seeded_and_lowers_the_loss():
    images, z, rows = training_data()
    runs = []
    for _ in range(2):
        model = tiny_model()
        history = train(model, images, z, rows, {**FINETUNE, "epochs": 6}, seed=3)
        runs.append((history, predict(model, images)))
    assert [r.train_loss for r in runs[0][0]] == [r.train_loss for r in runs[1][0]]
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    assert runs[0][0][-1].train_loss < runs[0][0][0].train_loss


def test_bf16_autocast_changes_the_arithmetic_and_still_trains():
    images, z, rows = training_data()
    losses = {}
    for precision in ("fp32", "bf16"):
        history = train(tiny_model(), images, z, rows, {**FINETUNE, "epochs": 6, "precision": precision}, seed=3)
        losses[precision] = [r.train_loss for r in history]
    assert losses["bf16"] != losses["fp32"], "autocast took effect"
    assert losses["bf16"][-1] < losses["bf16"][0]


def test_non_finite_loss_stops_training_with_a_clear_message():
    images, z, rows = training_data()
    with pytest.raises(StageError, match=r"training loss became (nan|inf) at epoch \d+, step \d+; lower finetune.lr"):
        train(tiny_model(), images, z, rows, {**FINETUNE, "lr": 1e30, "epochs": 5}, seed=0)


def test_finetune_stage_runs_under_dvc(reproduced_once):
    """The stage's outputs in the session's tiny run."""
    project = reproduced_once
    metrics = json.loads((project.path / "metrics/finetune.json").read_text())
    assert (
        set(metrics) >= {"test_mse", "Chirp_Start_Time", "Chirp_Start_Freq", "Chirp_End_Freq"}
        and "train_seconds" not in metrics
    )
    assert json.loads((project.path / "timings/finetune.json").read_text()).keys() == {
        "train_seconds",
        "stage_seconds",
        "peak_tree_rss_mib",
    }
    assert metrics["Chirp_Start_Time"].keys() == {"r2", "pearson_r", "mae_s"}
    assert metrics["test_images"] == 8 and np.isfinite(metrics["test_mse"])
    _, config = load_trained(project.path / "models")
    assert config["model"]["embed_dim"] == 24 and len(config["target_mean"]) == 3
    history = (project.path / "plots/finetune/history.csv").read_text().splitlines()
    assert history[0] == "epoch,train_loss,val_loss,lr,seconds" and len(history) == 3
    predictions = pd.read_csv(project.path / "results/finetune/predictions.csv")
    assert len(predictions) == 8 and {"true_Chirp_Start_Time", "pred_Chirp_End_Freq"} <= set(predictions.columns)


def test_nan_loss_fails_the_stage_and_writes_no_model(reproduced):
    """On a copy of the session's tiny run: dvc removes the stage's earlier outputs, the failed run writes none."""
    project = reproduced
    assert (project.path / "models").exists()
    project.set_params({"finetune": {"lr": 1e30, "epochs": 5}})
    result = project.dvc("repro", "finetune", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "training loss became" in output and "lower finetune.lr" in output and "Traceback" not in output
    assert not (project.path / "models").exists() and not (project.path / "metrics/finetune.json").exists()


def test_conv_stem_keeps_one_token_per_patch_and_refuses_patch_checkpoints(tmp_path):
    model = tiny_model(stem="conv")
    assert model.patch_embed.grid_size == (4, 4) and len(model.patch_embed.proj) == 3 * 3 + 1  # log2(8) conv layers
    assert predict(randomise_head(model), random_images(2)).shape == (2, 3)
    path = tmp_path / "patch_stem.safetensors"
    save_file(tiny_model().state_dict(), str(path))
    with pytest.raises(StageError, match=r"does not fit model.*patch embedding has keys \['patch_embed.proj.bias"):
        load_pretrained(tiny_model(stem="conv"), path)
