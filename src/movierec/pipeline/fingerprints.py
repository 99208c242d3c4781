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

The registry imports families on demand, so the imports do not show which families a
step runs; the table (:mod:`movierec.models.families`, read from the source being
fingerprinted like everything else) does. A step run once per family
(``train@<name>``, ``evaluate@<name>``) gets one fingerprint per family,
``data/code/<step>/<name>.txt``: its own family's module and only its own row of the
table, so editing or registering another family leaves it alone. Any other step that
reaches the registry may look up any family, so its fingerprint holds them all.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

from movierec.models.families import Family
from movierec.store.files import write_text

PACKAGE = "movierec"
CODE_STEP = "fingerprint"  # the step that writes the fingerprints
REGISTRY = f"{PACKAGE}.models.registry"  # imports families by name, out of sight of the imports
TABLE = f"{PACKAGE}.models.families"  # ... named in this table
PER_FAMILY = ("train", "evaluate")  # steps run once per family: one fingerprint per family
# Steps that load fixed families through the registry and no other (their fingerprint
# holds those families' code, not every family's).
READS = {"neighbours": ("word2vec",)}


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


_PARSED: dict[tuple[str, str], frozenset[str]] = {}  # (path, md5 of its text) -> imports


def _file_imports(path: Path) -> frozenset[str]:
    """The project modules a file imports, parsed once per version of the file (a
    fingerprint run walks the same files for every step and family)."""
    text = path.read_text()
    key = (str(path), hashlib.md5(text.encode()).hexdigest())
    if key not in _PARSED:
        _PARSED[key] = frozenset(_imports(ast.parse(text)))
    return _PARSED[key]


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
        todo += sorted(_file_imports(path))
    return files


def _step_start(src: Path, step: str) -> set[str]:
    """Modules the step's function in ``steps.py`` (and the helpers it calls) imports."""
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
    return start - {f"{PACKAGE}.pipeline.steps"}


def families_of(step: str, family: str | None = None) -> tuple[str, ...] | None:
    """The families a step may import by name: its own (per-family steps), the ones it
    reads (:data:`READS`), or None for any."""
    return (family,) if family else READS.get(step)


def step_files(src: Path, step: str, family: str | None = None) -> set[Path]:
    """Source files that the pipeline step ``step`` (``movierec.pipeline.steps.<step>``) runs;
    for a per-family step, run for ``family``."""
    start = _step_start(src, step)
    files = closure(src, start)
    if _module_file(src, REGISTRY) in files:  # families it may import by name
        table = read_table(src)
        start |= {table[name].module for name in families_of(step, family) or tuple(table)}
        files = closure(src, start)
    return files | {src / PACKAGE / "pipeline" / "steps.py"}


def _table_entries(text: str) -> list[tuple[ast.expr | None, ast.expr]]:
    """The key and value nodes of the ``FAMILIES = {...}`` literal in the table's source."""
    for node in ast.parse(text).body:
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        if isinstance(target, ast.Name) and target.id == "FAMILIES":
            assert isinstance(node.value, ast.Dict)
            return list(zip(node.value.keys, node.value.values, strict=True))
    return []


def read_table(src: Path) -> dict[str, Family]:
    """The family table as this source tree writes it (each row ``Family("module", ...)``
    with literal arguments), read without importing it."""
    path = _module_file(src, TABLE)
    rows = {}
    for key, value in _table_entries(path.read_text()) if path else []:
        assert isinstance(key, ast.Constant) and isinstance(value, ast.Call)
        rows[key.value] = Family(*(ast.literal_eval(arg) for arg in value.args))
    return rows


def table_rows(text: str, families: tuple[str, ...]) -> str:
    """The family table's source with every row but those of ``families`` taken out: what
    a per-family step depends on (the code around the table, and its own row)."""
    others: set[int] = set()
    for key, value in _table_entries(text):
        if isinstance(key, ast.Constant) and key.value not in families:
            others |= set(range(key.lineno, value.end_lineno + 1))
    return "".join(
        line for i, line in enumerate(text.splitlines(keepends=True), 1) if i not in others
    )


def fingerprint(root: Path, step: str, family: str | None = None) -> str:
    """``<md5>  <path>`` of every file the step runs, its stage script first, then sorted.
    For a per-family step the family table counts only that family's row."""
    src = root / "src"
    table = _module_file(src, TABLE)
    rows = families_of(step, family)
    lines = []
    for path in [root / "stages" / f"{step}.py"] + sorted(step_files(src, step, family)):
        label = path.relative_to(root).as_posix()
        data = path.read_bytes()
        if rows and path == table:
            data = table_rows(path.read_text(), rows).encode()
            label = f"{label} (rows {', '.join(rows)})"
        lines.append(f"{hashlib.md5(data).hexdigest()}  {label}\n")
    return "".join(lines)


def _changed(old: str, new: str) -> list[str]:
    """Paths whose hash differs between two fingerprints (added and removed files too)."""
    before = dict(line.split("  ", 1)[::-1] for line in old.splitlines() if "  " in line)
    after = dict(line.split("  ", 1)[::-1] for line in new.splitlines() if "  " in line)
    return sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))


def steps(root: Path) -> list[str]:
    """Every pipeline step with a stage script (``stages/<step>.py``), this one excluded."""
    return sorted(p.stem for p in (root / "stages").glob("*.py") if p.stem != CODE_STEP)


def fingerprint_files(root: Path) -> dict[str, str]:
    """Every fingerprint, by its path under ``data/code``: ``<step>.txt``, and for a step
    run once per family ``<step>/<family>.txt`` for each family the train stage fits."""
    out = {}
    for step in steps(root):
        if step in PER_FAMILY:
            for name, row in read_table(root / "src").items():
                if row.stage == "train":
                    out[f"{step}/{name}.txt"] = fingerprint(root, step, name)
        else:
            out[f"{step}.txt"] = fingerprint(root, step)
    return out


def write_fingerprints(root: Path, out: Path) -> list[str]:
    """Write every fingerprint under ``out``; one line per fingerprint saying what changed.

    A file is rewritten only when its contents change, and DVC compares contents, so
    a stage reruns exactly when a file its step runs changes. Fingerprints of families
    no longer in the table are removed."""
    lines = []
    prints = fingerprint_files(root)
    for step in PER_FAMILY:
        for stale in sorted((out / step).glob("*.txt")) if (out / step).is_dir() else []:
            if f"{step}/{stale.name}" not in prints:
                stale.unlink()
                lines.append(f"{step}/{stale.name}: removed (no such family)")
    for name, new in prints.items():
        path = out / name
        old = path.read_text() if path.is_file() else None
        if old == new:
            continue
        write_text(path, new)
        if old is None:
            lines.append(f"{name}: {len(new.splitlines())} source files")
        else:
            lines.append(f"{name}: changed {', '.join(_changed(old, new))}")
    return lines or ["no step's code changed"]
