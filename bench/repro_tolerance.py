"""Set repro-tolerance.yaml from the spread measured across machines, real and simulated.

Each RUN is a folder holding a fresh clone's ``metrics/`` after ``dvc repro`` on
another machine, or on this one made to compute like another (other CPU kernels,
BLAS code paths, one core), written ``label=folder`` (``label=folder@reference`` for a
run of another commit, compared with that commit's metrics instead):

    python bench/repro_tolerance.py \\
        "native AVX-512=/tmp/c-native" "native SSE, OpenBLAS Sandybridge=/tmp/c-old"

Every metric's tolerance is ``--factor`` times the largest move any run showed against
the reference (the committed ``metrics/``) on any metric of the same family and kind
(error: RMSE and MAE; ranking: NDCG, recall, hit rate), at least ``--floor``. The moves themselves
go to ``bench/repro-spread.json`` and a per-family table ``bench/repro-spread.md``:
what ``movierec check-repro`` calls "within measured noise" is this spread.
``--hold-out LABEL`` leaves one run out of the tolerances and reports whether it
passes them: a check of the tolerances against a machine they were not made from.
``--merge`` adds the runs to those recorded in ``bench/repro-spread.json`` instead of
replacing them: a run of a label already there overrides only the metrics it holds, so
a family added later is measured by reproducing its stages alone on each machine
(copy their ``metrics/eval/<family>.json`` into the run's folder) while the other
families keep the moves measured before.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path
from typing import Any

from movierec.experiments.reprocheck import Tolerance, tolerance_text
from movierec.store.files import write_json, write_text

ROOT = Path(__file__).resolve().parents[1]
METRIC_FILES = ("metrics/data.json", "metrics/embed.json", "metrics/eval/*.json")

HEADER = """\
# How far a fresh `dvc repro` may move a committed metric before `movierec check-repro`
# fails. With train.kernels: portable and train.threads fixed, every torch family
# reproduces bit for bit on another x86-64 machine with AVX2; these tolerances cover
# what is not pinned (numpy's own vector loops, a machine's own OPENBLAS_CORETYPE) and
# machines where the pinned paths cannot hold (no AVX2, not x86-64, kernels: native).
# Each is {factor:g} x the largest move of the same family and kind (error: RMSE, MAE;
# ranking: NDCG, recall) over the runs in `measured_on`, at least {floor:g}:
# `python bench/repro_tolerance.py` (bench/repro-spread.md lists the moves).
"""


def flatten(value: Any, prefix: str = "") -> dict[str, float]:
    """``{"test": {"rmse": 0.9}}`` -> ``{"test.rmse": 0.9}`` (as `dvc metrics` names keys)."""
    if isinstance(value, dict):
        out: dict[str, float] = {}
        for key, sub in value.items():
            out |= flatten(sub, f"{prefix}{key}.")
        return out
    if not isinstance(value, int | float):  # bools count as 0 / 1, as dvc compares them
        return {}
    return {prefix[:-1]: float(value)}


def read_metrics(root: Path) -> dict[str, float]:
    """Every numeric metric under ``root`` as ``file:key``."""
    found = {}
    for pattern in METRIC_FILES:
        for path in sorted(root.glob(pattern)):
            rel = path.relative_to(root).as_posix()
            for key, value in flatten(json.loads(path.read_text())).items():
                found[f"{rel}:{key}"] = value
    return found


def moves(reference: dict[str, float], run: dict[str, float], tol: Tolerance) -> dict[str, float]:
    """|run - reference| of every compared metric both have."""
    out = {}
    for name, old in reference.items():
        if tol.limit(name) is None or name not in run:
            continue
        new = run[name]
        out[name] = 0.0 if (math.isnan(old) and math.isnan(new)) else abs(new - old)
    return out


def family(name: str) -> str:
    found = re.match(r"metrics/eval/([^.]+)\.json", name)
    return found[1] if found else Path(name.split(":")[0]).stem


def group(name: str) -> str:
    """The pool a metric's tolerance is measured over: its family and kind."""
    key = name.split(":", 1)[1]
    kind = (
        "error"
        if key.endswith(("rmse", "mae"))
        else "ranking"
        if re.search(r"(ndcg|recall|hit)@", key)
        else key
    )
    return f"{family(name)}:{kind}"


def spread_table(spread: dict[str, dict[str, float]], tolerances: dict[str, float]) -> str:
    """Per family and run: how many metrics moved and the largest move (on which metric),
    with the tolerance that metric now has."""
    labels = list(spread)
    families = sorted({family(name) for run in spread.values() for name in run})
    lines = [
        "Largest move of any metric of each family, per run (`identical`: every metric bit for "
        "bit; `not run`: a family added after that run); the tolerance is that metric's in "
        "repro-tolerance.yaml.",
        "",
        "| family | " + " | ".join(labels) + " | tolerance of the largest |",
        "|---|" + "---|" * len(labels) + "---:|",
    ]
    for fam in families:
        cells, worst = [], (0.0, "")
        for label in labels:
            run = {n: v for n, v in spread[label].items() if family(n) == fam}
            name, move = max(run.items(), key=lambda kv: kv[1]) if run else ("", 0.0)
            moved = sum(v > 0 for v in run.values())
            cells.append(
                "not run"
                if not run
                else "identical"
                if not moved
                else f"{move:.2g} ({name.split(':')[1]}; {moved} of {len(run)} moved)"
            )
            if move > worst[0]:
                worst = (move, name)
        tol = f"{tolerances[worst[1]]:g}" if worst[1] else "-"
        lines.append(f"| {fam} | " + " | ".join(cells) + f" | {tol} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="label=folder of a reproduced clone")
    parser.add_argument("--reference", default=str(ROOT), help="folder with the committed metrics")
    parser.add_argument("--factor", type=float, default=2.0)
    parser.add_argument("--floor", type=float, default=0.0005)
    parser.add_argument("--hold-out", default=None, help="a run label to check, not to measure")
    parser.add_argument("--out", default=str(ROOT / "repro-tolerance.yaml"))
    parser.add_argument(
        "--merge", action="store_true", help="add to the runs in bench/repro-spread.json"
    )
    args = parser.parse_args()
    base = Tolerance.load(Path(args.out))
    reference = read_metrics(Path(args.reference))
    spread: dict[str, dict[str, float]] = {}
    if args.merge:
        recorded = json.loads((ROOT / "bench" / "repro-spread.json").read_text())
        spread = {label: dict(run) for label, run in recorded["runs"].items()}
    for run in args.runs:
        label, _, folder = run.rpartition("=")
        folder, _, against = folder.partition("@")  # a run of other code: its own reference
        ref = read_metrics(Path(against)) if against else reference
        spread[label] = spread.get(label, {}) | moves(ref, read_metrics(Path(folder)), base)
    measured = {k: v for k, v in spread.items() if k != args.hold_out}
    # A few runs are a small sample of machines: pool each family's error metrics (RMSE,
    # MAE) and its ranking metrics (NDCG, recall), val and test, so a metric's tolerance
    # is the largest move of its kind in its family, not of its own alone.
    pooled: dict[str, float] = {}
    for run in measured.values():
        for name, move in run.items():
            pooled[group(name)] = max(pooled.get(group(name), 0.0), move)
    tolerances = {
        name: round(max(args.floor, args.factor * pooled.get(group(name), 0.0)), 5)
        for name in reference
        if base.limit(name) is not None
    }
    text = tolerance_text(
        tolerances,
        list(measured),
        HEADER.format(factor=args.factor, floor=args.floor),
        {"default": base.default, "ignore": base.ignore},
    )
    Path(args.out).write_text(text)
    write_json(ROOT / "bench" / "repro-spread.json", {"runs": spread, "hold_out": args.hold_out})
    write_text(ROOT / "bench" / "repro-spread.md", spread_table(spread, tolerances))
    for label, run in spread.items():
        moved = sum(v > 0 for v in run.values())
        beyond = [n for n, v in run.items() if v > tolerances.get(n, 0)]
        print(
            f"{label}: {moved} of {len(run)} metrics moved, largest {max(run.values()):.5f}"
            + (f"; beyond tolerance: {len(beyond)} ({', '.join(beyond[:4])})" if beyond else "")
        )


if __name__ == "__main__":
    main()
