"""Each dvc.yaml stage's code deps are exactly the files it runs: its script and every vitheads module it
imports, directly or through other modules; and its params are those the code reads (`p["section"]...`).

    python scripts/stage_deps.py          print the mismatches (none: exit 0)
    python scripts/stage_deps.py --write  rewrite the vitheads/ entries of every stage's deps in dvc.yaml

tests/test_dependencies.py runs the check. Subpackage __init__.py files must stay empty (they are no deps).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "vitheads"
PARAMS_VARIABLE = "p"  # params are always read as `p = params.load()`, or passed on as `p`
VALIDATOR = f"{PACKAGE}/params.py"  # checks every section whichever stage runs: not a read


def module_path(dotted: str) -> str | None:
    """vitheads.interp.cache -> vitheads/interp/cache.py, if that file exists (a package is no file)."""
    path = dotted.replace(".", "/") + ".py"
    return path if (ROOT / path).is_file() else None


def direct_imports(path: Path) -> set[str]:
    """Paths (relative to ROOT) of the vitheads modules a file imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == PACKAGE:
            as_modules = [module_path(f"{node.module}.{a.name}") for a in node.names]
            found |= {m for m in as_modules if m}  # from vitheads.interp import cache
            if not all(as_modules):
                found.add(module_path(node.module))  # from vitheads.interp.cache import run_with_cache
        elif isinstance(node, ast.Import):
            found |= {module_path(a.name) for a in node.names if a.name.startswith(PACKAGE + ".")}
    return found - {None}


def module_closure(script: str) -> set[str]:
    """Every vitheads module a script runs, through any chain of imports."""
    todo, seen = [script], set()
    while todo:
        for module in direct_imports(ROOT / todo.pop()) - seen:
            seen.add(module)
            todo.append(module)
    return seen


def params_read(path: str) -> set[str]:
    """Dotted params keys a file reads: the outermost `p[...][...]` chains of string keys."""
    tree = ast.parse((ROOT / path).read_text())
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


def expected_deps(name: str) -> list[str]:
    """A stage's code deps: its script, then its vitheads modules, sorted."""
    script = f"stages/{name}.py"
    return [script, *sorted(module_closure(script))]


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
        found += [
            f"{name}: lists {d}, never imported"
            for d in sorted(deps - modules - {script})
            if d.startswith(PACKAGE + "/")
        ]
        declared = [d if isinstance(d, str) else next(iter(d)) for d in stage.get("params", [])]
        read = set().union(*(params_read(f) for f in [script, *modules] if f != VALIDATOR))
        found += [f"{name}: reads params '{k}', not declared" for k in sorted(read) if not covered(k, declared)]
    return found


def load_stages() -> dict:
    from ruamel.yaml import YAML

    return YAML(typ="safe").load((ROOT / "dvc.yaml").read_text())["stages"]


def write() -> None:
    """Replace the stages/ and vitheads/ entries of each stage's deps, keeping the data deps and comments."""
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.width = 120
    yaml.indent(mapping=2, sequence=4, offset=2)
    document = yaml.load((ROOT / "dvc.yaml").read_text())
    for name, stage in document["stages"].items():
        data = [d for d in stage["deps"] if not str(d).startswith(("stages/", PACKAGE + "/"))]
        stage["deps"].clear()
        stage["deps"].extend(expected_deps(name) + data)
    with open(ROOT / "dvc.yaml", "w") as out:
        yaml.dump(document, out)


def main() -> None:
    if sys.argv[1:] == ["--write"]:
        write()
    found = problems(load_stages())
    print("\n".join(found) or "dvc.yaml deps and params match the code")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
