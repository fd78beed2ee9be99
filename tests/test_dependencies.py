"""dvc.yaml's deps are exactly what each stage runs: the vitheads modules its script imports,
directly or through other modules, and the params sections it reads (`p["section"]["key"]`)."""

from __future__ import annotations

import ast
import copy
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "vitheads"
PARAMS_VARIABLE = "p"  # every stage reads params as `p = params.load()`


def direct_imports(path: Path) -> set[str]:
    """Paths (relative to ROOT) of the vitheads modules a file imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == PACKAGE:
            found |= {f"{PACKAGE}/{a.name}.py" for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PACKAGE + "."):
            found.add(node.module.replace(".", "/") + ".py")
        elif isinstance(node, ast.Import):
            found |= {a.name.replace(".", "/") + ".py" for a in node.names if a.name.startswith(PACKAGE + ".")}
    return found


def module_closure(script: str) -> set[str]:
    """Every vitheads module a script runs, through any chain of imports."""
    todo, seen = [script], set()
    while todo:
        for module in direct_imports(ROOT / todo.pop()) - seen:
            seen.add(module)
            todo.append(module)
    return seen


def params_read(script: str) -> set[str]:
    """Dotted params keys a script reads: the outermost `p[...][...]` chains of string keys."""
    tree = ast.parse((ROOT / script).read_text())
    inner = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Subscript)}
    keys = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Subscript) or id(node) in inner:
            continue
        chain, cursor = [], node
        while isinstance(cursor, ast.Subscript) and isinstance(cursor.slice, ast.Constant):
            chain.insert(0, cursor.slice.value)
            cursor = cursor.value
        if isinstance(cursor, ast.Name) and cursor.id == PARAMS_VARIABLE and chain:
            keys.add(".".join(chain))
    return keys


def covered(key: str, declared: list[str]) -> bool:
    return any(key == d or key.startswith(d + ".") for d in declared)


def problems(stages: dict) -> list[str]:
    """Every mismatch between dvc.yaml and what the stage scripts import and read."""
    found = []
    for name, stage in stages.items():
        script = f"stages/{name}.py"
        deps = set(stage.get("deps", []))
        modules = module_closure(script)
        if script not in deps:
            found.append(f"{name}: {script} is not a dep")
        found += [f"{name}: imports {m}, not a dep" for m in sorted(modules - deps)]
        found += [f"{name}: lists {d}, never imported" for d in sorted(deps - modules - {script}) if d.startswith(PACKAGE + "/")]
        declared = [d if isinstance(d, str) else next(iter(d)) for d in stage.get("params", [])]
        found += [f"{name}: reads params '{k}', not declared" for k in sorted(params_read(script)) if not covered(k, declared)]
    return found


def load_stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def test_the_package_init_runs_nothing():
    """Importing any module runs vitheads/__init__.py; it is no dep because it holds only a docstring."""
    body = ast.parse((ROOT / PACKAGE / "__init__.py").read_text()).body
    assert len(body) == 1 and isinstance(body[0].value, ast.Constant)


def test_every_stage_lists_exactly_the_modules_it_imports_and_the_params_it_reads():
    assert problems(load_stages()) == []


def test_a_removed_module_dep_is_caught():
    stages = copy.deepcopy(load_stages())
    stages["ablate"]["deps"].remove("vitheads/names.py")
    assert problems(stages) == ["ablate: imports vitheads/names.py, not a dep"]


def test_a_removed_params_section_is_caught():
    stages = copy.deepcopy(load_stages())
    stages["ablate"]["params"].remove("ablate")
    assert problems(stages) == ["ablate: reads params 'ablate', not declared"]


def test_the_params_reader_follows_nested_keys():
    assert params_read("stages/generate.py") >= {"model.image_size", "data.source", "distortion", "seed"}
