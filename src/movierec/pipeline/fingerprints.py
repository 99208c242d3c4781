"""Which project source files each pipeline step runs, read from the code itself.

A stage script calls ``movierec.pipeline.steps.<step>``; its code is that function, the
module's helpers it calls and everything they import, followed transitively
through the ``movierec`` package (imports inside functions count: they run too).

The ``fingerprint`` stage writes one fingerprint per step (``data/code/<step>.txt``: the
hash of each of those files) and every other stage depends on its step's
fingerprint instead of listing the files. A change anywhere in the package reruns
only the cheap ``fingerprint`` stage; a stage reruns exactly when a file its step runs
changed. It also keeps ``dvc.lock`` small: DVC rereads and rewrites the whole
lock file after every stage, so a thousand per-file entries cost seconds a stage.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

from movierec.store.files import write_text

PACKAGE = "movierec"
CODE_STEP = "fingerprint"  # the step that writes the fingerprints


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
    """Source files that the pipeline step ``step`` (``movierec.pipeline.steps.<step>``) runs."""
    steps = src / PACKAGE / "pipeline" / "steps.py"
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
    return closure(src, start - {f"{PACKAGE}.pipeline.steps"}) | {steps}


def fingerprint(root: Path, step: str) -> str:
    """``<md5>  <path>`` of every file the step runs, its stage script first, then sorted."""
    src = root / "src"
    files = [root / "stages" / f"{step}.py"] + sorted(step_files(src, step))
    return "".join(
        f"{hashlib.md5(path.read_bytes()).hexdigest()}  {path.relative_to(root).as_posix()}\n"
        for path in files
    )


def _changed(old: str, new: str) -> list[str]:
    """Paths whose hash differs between two fingerprints (added and removed files too)."""
    before = dict(line.split("  ", 1)[::-1] for line in old.splitlines() if "  " in line)
    after = dict(line.split("  ", 1)[::-1] for line in new.splitlines() if "  " in line)
    return sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))


def steps(root: Path) -> list[str]:
    """Every pipeline step with a stage script (``stages/<step>.py``), this one excluded."""
    return sorted(p.stem for p in (root / "stages").glob("*.py") if p.stem != CODE_STEP)


def write_fingerprints(root: Path, out: Path) -> list[str]:
    """Write ``out/<step>.txt`` for every step; one line per step saying what changed.

    A file is rewritten only when its contents change, and DVC compares contents, so
    a stage reruns exactly when a file its step runs changes."""
    lines = []
    for step in steps(root):
        path = out / f"{step}.txt"
        new = fingerprint(root, step)
        old = path.read_text() if path.is_file() else None
        if old == new:
            continue
        write_text(path, new)
        if old is None:
            lines.append(f"{step}: {len(new.splitlines())} source files")
        else:
            lines.append(f"{step}: changed {', '.join(_changed(old, new))}")
    return lines or ["no step's code changed"]
