"""finetune: train the regression ViT on the generated train split (see README)."""

import resource
import time

import pandas as pd
import torch

from vitheads import figures, params
from vitheads.data import load_split
from vitheads.model import build_model, load_pretrained, save_trained
from vitheads.outputs import atomic_path, run_stage, setup_logging, write_json
from vitheads.training import TARGETS, UNITS, Scaling, apply_lora, best_device, predict, regression_metrics, split_indices, train

DATA = "data/generated"
MODEL_DIR = "models"
METRICS = "metrics/finetune.json"
HISTORY = "plots/finetune/history.csv"
SCATTER = "plots/finetune/pred_vs_true.png"

log = setup_logging("finetune")


def main() -> None:
    p = params.load()
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
    log.info("wrote %s", HISTORY)
    with atomic_path(SCATTER) as tmp:
        r2 = [metrics[t]["r2"] for t in TARGETS]
        figures.pred_vs_true(scaling.unscale(pred_z), scaling.unscale(true_z), list(TARGETS), [UNITS[t] for t in TARGETS], r2, tmp)
    log.info("wrote %s", SCATTER)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    write_json(METRICS, {**metrics, "epochs_run": len(history), "train_seconds": round(seconds, 1), "peak_rss_mb": round(peak_mb)})
    log.info(
        "trained %d epochs in %.0f s (peak RSS %.0f MB); test MSE %.4f, R2 %s",
        len(history), seconds, peak_mb, metrics["test_mse"], " / ".join(f"{v:.3f}" for v in r2),
    )


if __name__ == "__main__":
    run_stage(main)
