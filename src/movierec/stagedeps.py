"""Which project source files a DVC stage runs, read from the code itself.

A stage script calls ``movierec.cli.main([command])``; its code is the CLI's
``cmd_<command>`` function plus everything that function imports, followed
transitively through the ``movierec`` package (imports inside functions count:
they run too). The test suite compares this with each stage's ``deps`` in
``dvc.yaml``, so a stage can never silently miss a code change.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "movierec"


def _module_file(src: Path, module: str) -> Path | None:
    base = src.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(node: ast.AST) -> set[str]:
    """Project modules imported anywhere below ``node`` (``from a import b`` may name a module)."""
    found: set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Import):
            found |= {a.name for a in sub.names if a.name.split(".")[0] == PACKAGE}
        elif (
            isinstance(sub, ast.ImportFrom)
            and sub.level == 0
            and (sub.module or "").split(".")[0] == PACKAGE
        ):
            found.add(sub.module)
            found |= {f"{sub.module}.{a.name}" for a in sub.names}
    return found


def _top_level(tree: ast.Module) -> ast.Module:
    body = [n for n in tree.body if not isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    return ast.Module(body=body, type_ignores=[])


def closure(src: Path, start: set[str]) -> set[Path]:
    """Files of every project module reachable from the modules in ``start``."""
    todo, files = list(start), set()
    while todo:
        module = todo.pop()
        path = _module_file(src, module)
        if path is None or path in files:
            continue
        files.add(path)
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages run too
        todo += sorted(_imports(ast.parse(path.read_text())))
    return files


def step_files(src: Path, step: str) -> set[Path]:
    """Source files that the pipeline step ``step`` (``movierec.steps.<step>``) runs."""
    steps = src / PACKAGE / "steps.py"
    tree = ast.parse(steps.read_text())
    funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    used, todo = set(), [step]
    while todo:  # the step and the module's helper functions it calls
        name = todo.pop()
        if name in used or name not in funcs:
            continue
        used.add(name)
        todo += [
            n.func.id
            for n in ast.walk(funcs[name])
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
        ]
    start = _imports(_top_level(tree))
    for name in used:
        start |= _imports(funcs[name])
    return closure(src, start - {f"{PACKAGE}.steps"}) | {steps}


def dvc_deps(src: Path, step: str) -> list[str]:
    """The code deps of a stage as ``dvc.yaml`` lists them (the models package as one folder)."""
    root = src.parent
    files = sorted(str(p.relative_to(root)) for p in step_files(src, step))
    models = f"{src.name}/{PACKAGE}/models"
    out = [f"stages/{step}.py"]
    for name in files:
        if name.startswith(models + "/"):
            if models not in out:
                out.append(models)
        else:
            out.append(name)
    return out


def rewrite(dvc_yaml: Path) -> None:
    """Set every stage's code deps in ``dvc_yaml`` from the code (data deps are kept)."""
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    doc = yaml.load(dvc_yaml.read_text())
    src = dvc_yaml.parent / "src"
    for name, stage in doc["stages"].items():
        body = stage.get("do", stage)
        data = [d for d in body["deps"] if not str(d).startswith(("src/", "stages/"))]
        body["deps"] = dvc_deps(src, name) + data
    with dvc_yaml.open("w") as handle:
        yaml.dump(doc, handle)


if __name__ == "__main__":  # python -m movierec.stagedeps: refresh dvc.yaml's code deps
    rewrite(Path("dvc.yaml"))
