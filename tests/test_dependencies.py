"""dvc.yaml's deps are exactly what each stage runs (scripts/stage_deps.py), and the stages are thin."""

from __future__ import annotations

import ast
import copy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import stage_deps  # noqa: E402


def test_package_inits_run_nothing():
    """Importing any module runs the __init__.py files above it; they are no deps because they are empty
    (the top one holds only a docstring)."""
    top = ast.parse((ROOT / "vitheads/__init__.py").read_text()).body
    assert len(top) == 1 and isinstance(top[0].value, ast.Constant)
    for init in (ROOT / "vitheads").glob("*/__init__.py"):
        assert init.read_text() == "", f"{init} must stay empty"


def test_every_stage_lists_exactly_the_modules_it_imports_and_the_params_it_reads():
    assert stage_deps.problems(stage_deps.load_stages()) == []


def test_a_removed_module_dep_is_caught():
    stages = copy.deepcopy(stage_deps.load_stages())
    stages["ablate"]["deps"].remove("vitheads/interp/cache.py")
    assert stage_deps.problems(stages) == ["ablate: imports vitheads/interp/cache.py, not a dep"]


def test_a_removed_params_section_is_caught():
    stages = copy.deepcopy(stage_deps.load_stages())
    stages["ablate"]["params"].remove("ablate")
    assert stage_deps.problems(stages) == ["ablate: reads params 'ablate', not declared"]


def test_params_read_in_the_library_count_for_the_stage():
    """The report stage passes `p` to vitheads.report.sections, which reads p["distortion"] there."""
    assert "distortion" not in stage_deps.params_read("stages/report.py")
    stages = copy.deepcopy(stage_deps.load_stages())
    stages["report"]["params"].remove("distortion")
    assert "report: reads params 'distortion', not declared" in stage_deps.problems(stages)


def test_the_params_reader_follows_nested_keys():
    assert stage_deps.params_read("stages/generate.py") >= {"model.image_size", "data.source", "distortion", "seed"}


def test_stages_import_only_vitheads_and_the_standard_library():
    """Thin stages: anything that computes (numpy, pandas, torch) lives in the library."""
    allowed = set(sys.stdlib_module_names) | {"vitheads"}
    for script in sorted((ROOT / "stages").glob("*.py")):
        for node in ast.walk(ast.parse(script.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                assert name.split(".")[0] in allowed, f"{script.name} imports {name}"
