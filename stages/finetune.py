"""finetune: train the regression ViT on the generated train split (see README)."""

import resource
import time

import pandas as pd
import torch

from vitheads import params, threads
from vitheads.dataset import load_split
from vitheads.model import Scaling, best_device, build_model, load_pretrained, predict, save_trained
from vitheads.names import TARGETS
from vitheads.outputs import atomic_path, run_stage, setup_logging, write_json
from vitheads.training import apply_lora, regression_metrics, split_indices, train

DATA = "data/generated"
MODEL_DIR = "models"
METRICS = "metrics/finetune.json"
TIMINGS = "timings/finetune.json"
HISTORY = "plots/finetune/history.csv"
PREDICTIONS = "results/finetune/predictions.csv"

log = setup_logging("finetune")


def predictions_table(true, pred) -> pd.DataFrame:
    """Test targets and predictions in physical units, one row per test image."""
    columns = {f"true_{t}": true[:, i] for i, t in enumerate(TARGETS)}
    columns |= {f"pred_{t}": pred[:, i] for i, t in enumerate(TARGETS)}
    return pd.DataFrame(columns)


def main() -> None:
    p = params.load()
    threads.limit_torch()
    m, f = p["model"], p["finetune"]
    train_split, test_split = load_split(DATA, "train"), load_split(DATA, "test")
    log.info("read params.yaml and %s (%d train, %d test images)", DATA, len(train_split.labels), len(test_split.labels))
    y = train_split.labels[list(TARGETS)].to_numpy()
    rows = split_indices(len(y), f["val_fraction"], p["seed"])
    scaling = Scaling.fit(y[rows[0]])

    torch.manual_seed(p["seed"])
    model = build_model(m, len(TARGETS))
    if m["init"] != "scratch":
        left = load_pretrained(model, m["init"])
        log.info("read %s (new, randomly initialised: %s)", m["init"], ", ".join(left) or "nothing")
    model.to(best_device())
    net = apply_lora(model, f) if f["method"] == "lora" else model
    n_trainable = sum(q.numel() for q in net.parameters() if q.requires_grad)
    log.info("%s fine-tuning: %d of %d parameters train", f["method"], n_trainable, sum(q.numel() for q in net.parameters()))

    started = time.perf_counter()
    history = train(net, train_split.images, scaling.z(y), rows, f, p["seed"])
    seconds = time.perf_counter() - started
    if f["method"] == "lora":
        model = net.merge_and_unload()
    model.cpu()

    true_z = scaling.z(test_split.labels[list(TARGETS)].to_numpy())
    pred_z = predict(model, test_split.images)
    metrics = regression_metrics(pred_z, true_z, scaling)
    config = {"model": m, "targets": list(TARGETS), **scaling.to_config(), "input": "x / 127.5 - 1"}
    with atomic_path(MODEL_DIR, is_dir=True) as tmp:
        save_trained(model, config, tmp)
    log.info("wrote %s", MODEL_DIR)
    with atomic_path(HISTORY) as tmp:
        pd.DataFrame([vars(r) for r in history]).to_csv(tmp, index=False)
    with atomic_path(PREDICTIONS) as tmp:
        predictions_table(scaling.unscale(true_z), scaling.unscale(pred_z)).to_csv(tmp, index=False, float_format="%.6g")
    log.info("wrote %s and %s", HISTORY, PREDICTIONS)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    write_json(METRICS, {**metrics, "epochs_run": len(history)})
    write_json(TIMINGS, {"train_seconds": round(seconds, 1), "peak_rss_mb": round(peak_mb)})
    r2 = " / ".join(f"{metrics[t]['r2']:.3f}" for t in TARGETS)
    log.info("trained %d epochs in %.0f s (peak RSS %.0f MB); test MSE %.4f, R2 %s", len(history), seconds, peak_mb, metrics["test_mse"], r2)


if __name__ == "__main__":
    run_stage(main)
