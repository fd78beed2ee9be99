"""figures: draw every PNG under plots/ from the computing stages' tables and arrays (docs/pipeline.md).

The only stage that draws figures: restyling one reruns figures and report only.
"""

from vitheads import params
from vitheads.outputs import run_stage, setup_logging
from vitheads.report.plots import draw_all

log = setup_logging("figures")


def main() -> None:
    p = params.load()
    draw_all(p)
    log.info("drew plots/{generate,finetune,ablate,attention,classify,causal}")


if __name__ == "__main__":
    run_stage(main)
