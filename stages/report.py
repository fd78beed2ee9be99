"""report: Markdown and self-contained HTML report of the run (docs/pipeline.md)."""

from vitheads import artifacts, params
from vitheads.outputs import atomic_path, run_stage, setup_logging
from vitheads.report.explorer import NOTE, explorer_html, run_payload
from vitheads.report.render import to_html
from vitheads.report.sections import report_markdown

log = setup_logging("report")


def main() -> None:
    p = params.load()
    markdown = report_markdown(p)
    page = to_html(markdown, artifacts.REPORT, {NOTE: explorer_html(run_payload(p))})
    log.info("read params.yaml, metrics/, results/, plots/ and the studies")
    with atomic_path(artifacts.REPORT, is_dir=True) as tmp:
        (tmp / artifacts.REPORT_MD.name).write_text(markdown)
        (tmp / artifacts.REPORT_HTML.name).write_text(page)
    log.info(
        "wrote %s and %s (%d figures embedded)", artifacts.REPORT_MD, artifacts.REPORT_HTML, page.count("<figure>")
    )


if __name__ == "__main__":
    run_stage(main)
