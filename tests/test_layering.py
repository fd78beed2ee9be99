"""Imports point one way, checked on the full import chain: each group of modules is imported in a fresh
interpreter and sys.modules is read. data and analysis load no torch; interp loads no pandas and no
matplotlib; matplotlib is loaded only by the renderer's users and the report layer; nothing loads
vitheads.report but the report layer itself and the figures and report stages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RENDERER_USERS = {
    "vitheads.data.rendering",
    "vitheads.data.pairs",
    "vitheads.data.generation",
    "stages.generate",
    "stages.causal",
    "vitheads.study.graded",  # renders the graded benchmark's pairs
}
REPORT_STAGES = {"stages.figures", "stages.report"}


def modules(folder: str) -> list[str]:
    return sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for p in (ROOT / folder).rglob("*.py")
        if p.name not in ("__init__.py", "__main__.py")
    )


def loaded(names: list[str], watched: list[str]) -> dict[str, bool]:
    """Which of `watched` are in sys.modules after importing `names` in a fresh interpreter."""
    script = (
        f"import importlib, json, sys\nfor n in {names!r}: importlib.import_module(n)\n"
        f"print(json.dumps({{w: w in sys.modules for w in {watched!r}}}))"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])


def culprits(names: list[str], forbidden: str) -> list[str]:
    """The members of a group that load `forbidden` on their own (run only when the group does)."""
    return [n for n in names if loaded([n], [forbidden])[forbidden]]


ALL = modules("vitheads") + modules("stages")
GROUPS = {
    "data loads no torch": (modules("vitheads/data"), ["torch"]),
    "analysis loads no torch": (modules("vitheads/analysis"), ["torch"]),
    "interp loads no pandas and no matplotlib": (modules("vitheads/interp"), ["pandas", "matplotlib"]),
    "only the renderer's users and the report layer load matplotlib": (
        [m for m in ALL if m not in RENDERER_USERS | REPORT_STAGES and not m.startswith("vitheads.report.")],
        ["matplotlib"],
    ),
    "only the figures and report stages load the report layer": (
        [m for m in ALL if m not in REPORT_STAGES and not m.startswith("vitheads.report.")],
        ["vitheads.report"],
    ),
}


@pytest.mark.parametrize("rule", GROUPS)
def test_imports_point_one_way(rule):
    names, forbidden = GROUPS[rule]
    assert names
    found = loaded(names, forbidden)
    for module, present in found.items():
        assert not present, f"{rule}: {module} is loaded by {culprits(names, module)}"


def test_the_check_sees_a_violation():
    """The renderer loads matplotlib, and the interp engine loads torch: the groups above would notice."""
    assert loaded(["vitheads.data.rendering"], ["matplotlib", "torch"]) == {"matplotlib": True, "torch": False}
    assert culprits(["vitheads.names", "vitheads.interp.cache"], "torch") == ["vitheads.interp.cache"]
