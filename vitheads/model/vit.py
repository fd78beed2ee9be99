"""The regression ViT: timm's VisionTransformer, plus a position-aware 'flatten' readout.

With CLS or average pooling a randomly initialised ViT spreads the chirp's few patches over
all tokens, and on CPU budgets it never leaves the mean prediction (R^2 ~ 0). Reading the
three targets from the flattened patch tokens gives every patch a direct path to the loss.
"""

from __future__ import annotations

import json
import math
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from timm.layers import PatchEmbed
from timm.models import load_state_dict
from timm.models.vision_transformer import VisionTransformer, checkpoint_filter_fn
from torch import nn

from vitheads.model.planted import plant
from vitheads.outputs import StageError

WEIGHTS = "model.safetensors"
CONFIG = "model.json"
EVAL_BATCH = 128


@dataclass(frozen=True)
class Scaling:
    """Z-scoring of the targets with the train split's mean and std, kept with the model."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, y: np.ndarray) -> Scaling:
        return cls(y.mean(axis=0), y.std(axis=0))

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Scaling:
        return cls(np.asarray(config["target_mean"]), np.asarray(config["target_std"]))

    def z(self, y: np.ndarray) -> np.ndarray:
        return ((y - self.mean) / self.std).astype(np.float32)

    def unscale(self, z: np.ndarray) -> np.ndarray:
        return z * self.std + self.mean

    def to_config(self) -> dict[str, list[float]]:
        return {"target_mean": self.mean.tolist(), "target_std": self.std.tolist()}


def best_device() -> torch.device:
    """The GPU when torch sees one (paper-scale profiles), else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def to_input(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 [B, S, S, 3] -> float [B, 3, S, S] in [-1, 1] (mean 0.5, std 0.5: timm's ViT-B/16 augreg)."""
    x = torch.from_numpy(np.array(images)).to(device).permute(0, 3, 1, 2)  # copy: memmaps are read-only
    return x.float().div_(127.5).sub_(1.0)


@torch.no_grad()
def predict(model: nn.Module, images: np.ndarray, batch_size: int = EVAL_BATCH) -> np.ndarray:
    """Z-scored predictions for uint8 images, in batches, in eval mode."""
    was_training = model.training
    model.eval()
    device = device_of(model)
    out = [model(to_input(images[i : i + batch_size], device)).cpu().numpy() for i in range(0, len(images), batch_size)]
    model.train(was_training)
    return np.concatenate(out)


class ConvStemEmbed(PatchEmbed):
    """Early convolutions (Xiao et al. 2021, "Early convolutions help transformers see better"):
    log2(patch) 3x3 stride-2 conv+BN+ReLU layers and a 1x1 conv replace the one patchifying conv.
    The grid, and so one token per image patch, is unchanged."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        dim, channels, layers = self.proj.out_channels, self.proj.in_channels, []
        steps = int(math.log2(self.patch_size[0]))
        for i in range(steps):
            out = dim if i == steps - 1 else min(dim, 32 * 2**i)
            layers += [nn.Conv2d(channels, out, 3, 2, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            channels = out
        self.proj = nn.Sequential(*layers, nn.Conv2d(channels, dim, 1))


class ChirpViT(VisionTransformer):
    """timm's VisionTransformer; `global_pool='flatten'` reads out all patch tokens at once. A planted model
    (vitheads.model.planted) has a key bias per layer [L, H, 1, N], passed to each block as its attention
    mask, and a readout mask [P]; both are None otherwise."""

    key_bias: torch.Tensor | None
    readout_keep: torch.Tensor | None

    def __init__(self, *, global_pool: str = "token", **kwargs):
        self.flatten_readout = global_pool == "flatten"
        if self.flatten_readout:  # final `norm` as with CLS pooling: ImageNet checkpoints' keys fit
            kwargs.update(global_pool="avg", fc_norm=False)
        else:
            kwargs.update(global_pool=global_pool)
        super().__init__(**kwargs)
        if self.flatten_readout:
            self.head = nn.Linear(self.patch_embed.num_patches * self.embed_dim, self.num_classes)
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)
        for name in ("key_bias", "readout_keep"):  # set by vitheads.model.planted; rebuilt from the config, not saved
            self.register_buffer(name, None, persistent=False)

    def forward_features(self, x: torch.Tensor, attn_mask=None, is_causal: bool = False) -> torch.Tensor:
        if self.key_bias is None:
            return super().forward_features(x, attn_mask=attn_mask, is_causal=is_causal)
        if attn_mask is not None or is_causal:
            raise ValueError("a planted model's attention mask is its key bias: pass no other")
        x = self.norm_pre(self.patch_drop(self._pos_embed(self.patch_embed(x))))
        for layer, block in enumerate(self.blocks):
            x = block(x, attn_mask=self.key_bias[layer : layer + 1].to(x.dtype))  # [1, H, 1, N]
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if not self.flatten_readout:
            return super().forward_head(x, pre_logits)
        x = self.fc_norm(x[:, self.num_prefix_tokens :])  # [B, P, D]
        if self.readout_keep is not None:  # a planted model reads no cue token (vitheads.model.planted)
            x = x * self.readout_keep[:, None]
        x = self.head_drop(x.flatten(1))
        return x if pre_logits else self.head(x)


def build_model(m: dict[str, Any], num_outputs: int, cue_tokens: dict[str, list[int]] | None = None) -> ChirpViT:
    """The ViT that params.yaml `model` describes, randomly initialised (seed torch first); with cue_tokens
    (kind -> token indices), planted: its cues reach the output only through designated heads."""
    model = ChirpViT(
        img_size=m["image_size"],
        patch_size=m["patch_size"],
        embed_dim=m["embed_dim"],
        depth=m["depth"],
        num_heads=m["num_heads"],
        mlp_ratio=m["mlp_ratio"],
        global_pool=m["pooling"],
        num_classes=num_outputs,
        embed_layer=ConvStemEmbed if m["stem"] == "conv" else PatchEmbed,
    )
    return plant(model, cue_tokens) if cue_tokens else model


def load_pretrained(model: ChirpViT, path: str | Path) -> list[str]:
    """Load a timm-format ViT state dict (.safetensors, or .pth/.pt read with weights_only=True).

    timm's own loader and `checkpoint_filter_fn` resize the position embedding (and patch
    embedding) to this model's grid. A head of another shape (ImageNet's 1000 classes) is
    dropped and left at init; any other missing or unexpected key is an error (a silent key-prefix mismatch is how the
    seed author's example ended up loading only the head). Returns the keys left at init.
    """
    path = Path(path)
    if not path.is_file():
        raise StageError(f"model.init checkpoint '{path}' not found; expected 'scratch' or a timm-format state dict")
    try:
        state = load_state_dict(str(path), weights_only=True)
    except Exception as err:  # safetensors, torch and pickle raise many kinds for a bad file
        first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
        if isinstance(err, pickle.UnpicklingError) or "weights_only" in str(err):
            raise StageError(f"refusing to load '{path}': it is not a plain state dict ({first_line})") from None
        raise StageError(f"cannot read checkpoint '{path}': {type(err).__name__}: {first_line}") from None
    own = model.state_dict()
    stems = [sorted(k for k in keys if k.startswith("patch_embed.")) for keys in (own, state)]
    if stems[0] != stems[1]:
        raise StageError(
            f"checkpoint '{path}' does not fit model.*: its patch embedding has keys {stems[1][:3]}, "
            f"the model's {stems[0][:3]} (model.stem)"
        )
    state = {
        k: v
        for k, v in checkpoint_filter_fn(state, model).items()
        if not (k.startswith("head.") and (k not in own or v.shape != own[k].shape))
    }
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith("head.")]
    if missing or result.unexpected_keys:
        raise StageError(
            f"checkpoint '{path}' does not fit model.* ({len(missing)} missing keys, e.g. {missing[:3]}; "
            f"{len(result.unexpected_keys)} unexpected, e.g. {result.unexpected_keys[:3]})"
        )
    return result.missing_keys


def save_trained(model: ChirpViT, config: dict[str, Any], out_dir: Path) -> None:
    """Weights as safetensors plus the JSON needed to rebuild the model and unscale its outputs."""
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out_dir / WEIGHTS))
    (out_dir / CONFIG).write_text(json.dumps(config, indent=2) + "\n")


def load_trained(model_dir: str | Path) -> tuple[ChirpViT, dict[str, Any]]:
    """The finetune stage's model, in eval mode, and its config (targets, scaling, params)."""
    model_dir = Path(model_dir)
    for name in (WEIGHTS, CONFIG):
        if not (model_dir / name).is_file():
            raise StageError(f"'{model_dir / name}' not found; run the finetune stage first")
    config = json.loads((model_dir / CONFIG).read_text())
    model = build_model(config["model"], len(config["targets"]), config.get("cue_tokens"))
    model.load_state_dict(load_file(str(model_dir / WEIGHTS)))
    return model.eval(), config
