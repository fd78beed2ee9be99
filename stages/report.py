"""report: Markdown and self-contained HTML report of the run (docs/pipeline.md)."""

from pathlib import Path

from vitheads import params
from vitheads.outputs import atomic_path, run_stage, setup_logging
from vitheads.report.blocks import Image, to_html, to_markdown
from vitheads.report.sections import TITLE, report_blocks

OUT = Path("report")

log = setup_logging("report")


def main() -> None:
    p = params.load()
    blocks = report_blocks(p)
    log.info("read params.yaml, metrics/, results/, plots/ and the seed study")
    with atomic_path(OUT, is_dir=True) as tmp:
        (tmp / "report.md").write_text(to_markdown(blocks, OUT))
        (tmp / "report.html").write_text(to_html(blocks, TITLE))
    log.info(
        "wrote %s/report.md and %s/report.html (%d figures embedded)",
        OUT,
        OUT,
        sum(isinstance(b, Image) for b in blocks),
    )


if __name__ == "__main__":
    run_stage(main)
