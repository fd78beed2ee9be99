"""finetune: train the regression ViT on the generated train split (docs/pipeline.md)."""

from vitheads import params, threads
from vitheads.analysis.accuracy import history_table, predictions_table, regression_metrics
from vitheads.analysis.tables import write_table
from vitheads.data.dataset import cue_tokens, load_meta, load_split, model_targets
from vitheads.model.training import finetune
from vitheads.model.vit import predict, save_trained
from vitheads.outputs import atomic_path, run_stage, setup_logging, write_json
from vitheads.timing import StageClock

DATA = "data/generated"
MODEL_DIR = "models"
METRICS = "metrics/finetune.json"
TIMINGS = "timings/finetune.json"
HISTORY = "plots/finetune/history.csv"
PREDICTIONS = "results/finetune/predictions.csv"

log = setup_logging("finetune")


def main() -> None:
    clock = StageClock()
    p = params.load()
    threads.limit_torch()
    m, f = p["model"], p["finetune"]
    train_split, test_split = load_split(DATA, "train"), load_split(DATA, "test")
    log.info(
        "read params.yaml and %s (%d train, %d test images)", DATA, len(train_split.labels), len(test_split.labels)
    )
    meta = load_meta(DATA)
    targets, tokens = model_targets(meta), cue_tokens(meta)
    trained = finetune(train_split.images, train_split.targets(targets), m, f, p["seed"], tokens)

    true_z = trained.scaling.z(test_split.targets(targets))
    pred_z = predict(trained.model, test_split.images)
    metrics = regression_metrics(pred_z, true_z, trained.scaling.unscale, targets)
    config = {"model": m, "targets": list(targets), **trained.scaling.to_config(), "input": "x / 127.5 - 1"}
    if tokens:
        config["cue_tokens"] = tokens
    with atomic_path(MODEL_DIR, is_dir=True) as tmp:
        save_trained(trained.model, config, tmp)
    log.info("wrote %s", MODEL_DIR)
    with atomic_path(HISTORY) as tmp:
        write_table(history_table(trained.history), tmp, float_format=None)
    with atomic_path(PREDICTIONS) as tmp:
        write_table(predictions_table(trained.scaling.unscale(true_z), trained.scaling.unscale(pred_z), targets), tmp)
    log.info("wrote %s and %s", HISTORY, PREDICTIONS)
    write_json(METRICS, {**metrics, "epochs_run": len(trained.history)})
    timings = clock.record(train_seconds=trained.seconds)
    write_json(TIMINGS, timings)
    r2 = " / ".join(f"{metrics[t]['r2']:.3f}" for t in targets)
    log.info(
        "trained %d epochs in %.0f s (peak tree RSS %d MiB); test MSE %.4f, R2 %s",
        len(trained.history),
        trained.seconds,
        timings["peak_tree_rss_mib"],
        metrics["test_mse"],
        r2,
    )


if __name__ == "__main__":
    run_stage(main)
