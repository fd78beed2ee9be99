"""Fine-tuning the regression ViT: seeded AdamW, warmup + cosine, clipping, early stopping."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from vitheads.model.vit import Scaling, best_device, build_model, device_of, load_pretrained, predict, to_input
from vitheads.outputs import StageError, log


def lr_at(step: int, total: int, warmup: int, base: float) -> float:
    """Linear warmup to `base`, then cosine decay to zero at `total`."""
    if step < warmup:
        return base * (step + 1) / warmup
    return base * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def apply_lora(model: nn.Module, f: dict[str, Any]) -> nn.Module:
    """Wrap with peft LoRA on `finetune.lora_targets`; only adapters and the new head train."""
    from peft import LoraConfig, get_peft_model  # imported here: full fine-tuning does not need it

    config = LoraConfig(
        r=f["lora_rank"], lora_alpha=f["lora_alpha"], target_modules=list(f["lora_targets"]), modules_to_save=["head"]
    )
    return get_peft_model(model, config)


def mixed_precision(precision: str, device: torch.device) -> torch.autocast:
    """The autocast context of `finetune.precision`; bf16 is refused on a GPU without native bf16
    (torch would emulate it, slowly), not replaced."""
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
        raise StageError(
            "finetune.precision 'bf16' needs a GPU with bfloat16 support; "
            f"{torch.cuda.get_device_name(device)} lacks it: use fp32"
        )
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    val_loss: float
    lr: float
    seconds: float


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/validation split of the train rows, both sorted (sequential memmap reads)."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(n * val_fraction)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def train(
    model: nn.Module,
    images: np.ndarray,
    z: np.ndarray,
    split: tuple[np.ndarray, np.ndarray],
    f: dict[str, Any],
    seed: int,
    on_epoch: Callable[[EpochRecord], None] = lambda record: None,
) -> list[EpochRecord]:
    """Train in place on rows split[0] of images/z (z-scored targets); keep the weights of the
    best epoch on rows split[1]; stop after `finetune.patience` epochs without improvement."""
    train_rows, val_rows = split
    val_images, val_z = images[val_rows], z[val_rows]
    generator = torch.Generator().manual_seed(seed)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        trainable, lr=f["lr"], betas=(0.9, f["adam_beta2"]), weight_decay=f["weight_decay"], fused=f["fused_optimizer"]
    )
    memory_format = torch.channels_last if f["channels_last"] else torch.contiguous_format
    model.to(memory_format=memory_format)  # channels-last: the conv stem's kernels run faster on CPU
    total = math.ceil(len(train_rows) / f["batch_size"]) * f["epochs"]
    warmup = max(1, int(f["warmup_fraction"] * total))
    device = device_of(model)
    autocast = mixed_precision(f["precision"], device)
    targets = torch.from_numpy(z).to(device)
    best, best_state, history, step, started = math.inf, None, [], 0, time.perf_counter()
    progress = tqdm(total=total, desc="finetune", unit="step")
    for epoch in range(1, f["epochs"] + 1):
        order = train_rows[torch.randperm(len(train_rows), generator=generator).numpy()]
        losses = []
        for start in range(0, len(order), f["batch_size"]):
            batch = np.sort(order[start : start + f["batch_size"]])  # sorted: sequential reads from the memmap
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, total, warmup, f["lr"])
            with autocast:
                prediction = model(to_input(images[batch], device).contiguous(memory_format=memory_format))
            loss = nn.functional.mse_loss(prediction.float(), targets[batch])
            if not torch.isfinite(loss):
                progress.close()
                raise StageError(
                    f"training loss became {loss.item()} at epoch {epoch}, step {step + 1}; "
                    f"lower finetune.lr (now {f['lr']}) or check the inputs"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(trainable, f["clip_grad"])
            optimizer.step()
            losses.append(loss.item())
            step += 1
            progress.update()
            progress.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}", epoch=epoch)
        val_loss = float(np.mean((predict(model, val_images) - val_z) ** 2))
        record = EpochRecord(
            epoch, float(np.mean(losses)), val_loss, optimizer.param_groups[0]["lr"], time.perf_counter() - started
        )
        history.append(record)
        on_epoch(record)
        log.info("epoch %d: train loss %.4f, val loss %.4f", epoch, record.train_loss, val_loss)
        if val_loss < best:
            best, best_state = val_loss, copy.deepcopy(model.state_dict())
        elif epoch - min(history, key=lambda r: r.val_loss).epoch >= f["patience"]:
            log.info("early stop: no better val loss for %d epochs", f["patience"])
            break
    progress.close()
    model.load_state_dict(best_state)
    return history


@dataclass
class Finetuned:
    """A trained model (on the CPU, LoRA merged), its target scaling, and its training history."""

    model: nn.Module
    scaling: Scaling
    history: list[EpochRecord]
    seconds: float


def finetune(
    images: np.ndarray,
    y: np.ndarray,
    m: dict[str, Any],
    f: dict[str, Any],
    seed: int,
    cue_tokens: dict[str, list[int]] | None = None,
) -> Finetuned:
    """The finetune stage's work: seeded split and init, optional checkpoint and LoRA, training on the
    train rows of (images, y) with targets z-scored by the train rows' mean and std; with cue_tokens, the
    planted model (vitheads.model.planted)."""
    rows = split_indices(len(y), f["val_fraction"], seed)
    scaling = Scaling.fit(y[rows[0]])
    torch.manual_seed(seed)
    model = build_model(m, y.shape[1], cue_tokens)
    if m["init"] != "scratch":
        left = load_pretrained(model, m["init"])
        log.info("read %s (new, randomly initialised: %s)", m["init"], ", ".join(left) or "nothing")
    model.to(best_device())
    net = apply_lora(model, f) if f["method"] == "lora" else model
    trainable = sum(q.numel() for q in net.parameters() if q.requires_grad)
    log.info(
        "%s fine-tuning: %d of %d parameters train", f["method"], trainable, sum(q.numel() for q in net.parameters())
    )
    started = time.perf_counter()
    history = train(net, images, scaling.z(y), rows, f, seed)
    seconds = time.perf_counter() - started
    if f["method"] == "lora":
        model = net.merge_and_unload()
    return Finetuned(model.cpu(), scaling, history, seconds)
