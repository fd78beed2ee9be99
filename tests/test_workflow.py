"""The whole pipeline and the DVC experiment workflow, on a throwaway copy with tiny params."""

import json
import re


def stages_run(output: str) -> list[str]:
    return re.findall(r"Running stage '(\w+)'", output)


def test_repro_report_experiments_and_offline_plots(reproduced_six_once, reproduced_six):
    """The first `dvc repro` of a fresh copy with six layers (conftest's SIX_LAYERS) is the session's, which
    test_study starts from too; the rest runs on a private copy of it."""
    assert stages_run(reproduced_six_once.output) == [
        "generate",
        "finetune",
        "ablate",
        "attention",
        "causal",
        "classify",
        "figures",
        "report",
    ]
    project = reproduced_six
    report = (project.path / "report/report.html").read_text()
    assert "This run: replication of arXiv 2503.18762" in report and report.count("data:image/png;base64,") >= 8
    assert not re.search(r"""(src|href)=["']?https?:""", report)
    assert not re.search(r"&amp;[a-z]+;", report)  # an HTML entity in a template shows escaped: write the character
    markdown = (project.path / "report/report.md").read_text()
    assert "| Layers 6-11 hold monosemantic chirp-tracking heads |" in markdown
    assert (
        "Author's code emulated on our model (" in markdown
        and "the last head of the sweep, with every head's rows zeroed" in markdown
    )
    assert "### The earlier seed study" in markdown and "## Causal evidence: paired renders" in markdown
    # the committed studies' sections: the graded benchmark's bound beside the per-head counts, and the complete
    # factorial's verdicts with its figure (study/ is copied into the project as committed)
    assert "## Graded benchmark: what the per-head measures can see" in markdown
    assert markdown.count("Per-head labels use the repaired rule") >= 3  # graded, causal and route sections
    assert (project.path / "plots/study/graded_power.png").stat().st_size > 50_000
    assert "## What each distractor changes: the factorial" in markdown and "No effect is estimated yet" not in markdown
    assert "| R2 mean over targets | text |" in markdown and "| no effect |" in markdown
    assert (project.path / "plots/study/factorial_interactions.png").stat().st_size > 50_000
    causal = json.loads((project.path / "metrics/causal.json").read_text())
    assert causal["pixels_changed_outside_element"] == 0 and causal["images"] == 4
    assert causal["direct_attribution"]["max_abs_gap_parts_vs_prediction"] < 1e-4
    assert stages_run(project.dvc("repro").stdout) == []  # the run is committed ("pipeline run")

    project.set_params({"classify": {"min_enrichment": 1.0, "mono_share": 1.0}})
    rerun = stages_run(project.dvc("repro").stdout)  # figures and report follow only if classify's outputs changed
    assert rerun[0] == "classify" and set(rerun) <= {"classify", "figures", "report"}
    project.run("git", "checkout", "params.yaml")
    project.dvc("repro")

    (project.path / "vitheads/report/figures.py").write_text(
        (project.path / "vitheads/report/figures.py").read_text() + "\n# restyled\n"
    )
    assert set(json.loads(project.dvc("status", "--json").stdout)) == {"figures"}
    rerun = stages_run(project.dvc("repro").stdout)
    assert rerun[0] == "figures" and set(rerun) <= {"figures", "report"}, (
        "a figure change reruns figures and report only"
    )
    project.run("git", "checkout", "vitheads/report/figures.py")
    project.dvc("repro")

    # up to finetune, the last stage whose metrics the diff checks (the queued experiments of test_sharing run all)
    experiment = stages_run(project.dvc("exp", "run", "-S", "distortion.colorbar=false", "finetune").stdout)
    assert experiment == ["generate", "finetune"]
    generated = json.loads((project.path / "metrics/generate.json").read_text())
    assert generated["test_area_share"]["colorbar"] == 0
    diff = project.dvc("metrics", "diff", "--json")
    changed = json.loads(diff.stdout)
    assert "metrics/generate.json" in changed and "test_area_share.colorbar" in changed["metrics/generate.json"]
    assert "metrics/finetune.json" in changed

    project.dvc("plots", "diff", "-o", "plots_html")
    page = (project.path / "plots_html/index.html").read_text()
    assert "vegaEmbed" in page and "Training curves" in page and "Ablation per head" in page
    assert not re.search(r"""(src|href)=["']?https?:""", page), "plots page loads something from the network"
