"""Cost growth: the same families on synthetic data of growing size (``movierec bench --scale``).

Each size is one :func:`movierec.experiments.bench.run_bench` on the ``synthetic`` data set, so every
stage runs the pipeline's own code in a child process and reports its seconds and peak
memory. Shapes follow MovieLens's own growth from ML-1M (6,040 users, 3,706 movies, 1M
ratings) to ML-25M (162,541 users, 62,423 movies, 25M): users grow as ratings^1.02 and
movies as ratings^0.88, so 25M is ML-25M's shape. A family that refuses or fails at a size
is recorded with its one-line reason and the others go on.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from movierec.errors import ConfigError
from movierec.experiments.bench import budget_overrides, machine, run_bench
from movierec.store.files import write_json, write_text

SIZES = (100_000, 1_000_000, 5_000_000, 25_000_000)
_ML1M = (1_000_209, 6_040, 3_706)
_USER_EXPONENT = math.log(162_541 / 6_040) / math.log(25_000_095 / 1_000_209)
_ITEM_EXPONENT = math.log(62_423 / 3_706) / math.log(25_000_095 / 1_000_209)
_UNITS = {"": 1, "k": 1_000, "m": 1_000_000}


def shape(n_ratings: int) -> tuple[int, int]:
    """``(users, movies)`` of a MovieLens-like set with ``n_ratings`` ratings (at most half
    of the user-movie grid filled, as the synthetic generator requires)."""
    ratings, users, items = _ML1M
    grow = n_ratings / ratings
    n_users = users * grow**_USER_EXPONENT
    n_items = items * grow**_ITEM_EXPONENT
    # small sizes: widen both sides alike until the grid is at most half full
    widen = max(1.0, math.sqrt(2 * n_ratings / (n_users * n_items)))
    n_users, n_items = math.ceil(n_users * widen), math.ceil(n_items * widen)
    if n_users * n_items // 2 < n_ratings:  # rounding
        n_items += 1
    return n_users, n_items


def parse_sizes(text: str) -> list[int]:
    """``100k,1M,5M,25M`` -> ratings per size (one line naming the bad entry)."""
    sizes = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*", part)
        if not match:
            raise ConfigError(f"--sizes: {part.strip()!r} is not a size; write e.g. 100k,1M,5M,25M")
        value = round(float(match.group(1)) * _UNITS[match.group(2).lower()])
        if value < 100:
            raise ConfigError(f"--sizes: {part.strip()!r} is too small (at least 100 ratings)")
        sizes.append(value)
    return sorted(set(sizes))


def run_scale(
    root: Path,
    sizes: list[int],
    models: list[str] | None,
    progress: bool = True,
    profile: str | None = None,
    on_size: Callable[[dict[str, Any]], None] | None = None,
    max_hours: float | None = None,
) -> dict[str, Any]:
    """Bench ``models`` at every size; the record with one row per (size, stage).
    ``profile``: a ``profiles.yaml`` entry applied at every size (e.g. ``ml-25m``).
    ``max_hours``: the time budget of every train and evaluate stage (see ``--max-hours``).
    ``on_size(record)`` runs after the preprocessing and each family of every size, with
    the record so far, so a long run stopped at 25M keeps what it finished."""
    import sys

    here = machine()
    record: dict[str, Any] = {"machine": here, "profile": profile, "sizes": [], "rows": []}
    for n in sizes:
        users, items = shape(n)
        if progress:
            print(f"scale: {n:,} ratings ({users:,} users, {items:,} movies)", file=sys.stderr)
        data: dict[str, Any] = {"synthetic": {"n_ratings": n, "n_users": users, "n_items": items}}
        if profile:
            data["profile"] = profile
        size = {"ratings": n, "users": users, "movies": items}

        def rows(bench: dict[str, Any], size: dict[str, Any] = size) -> list[dict[str, Any]]:
            return [size | row | {"machine": here} for row in _stage_rows(bench)]

        def so_far(bench: dict[str, Any], size: dict[str, Any] = size) -> None:
            if on_size is not None:  # the finished sizes plus this one's families so far
                on_size(
                    record
                    | {"sizes": [*record["sizes"], size], "rows": record["rows"] + rows(bench)}
                )

        overrides: dict[str, Any] = {"data": data}
        if max_hours is not None:
            overrides |= budget_overrides(max_hours)
        bench = run_bench(
            root,
            "synthetic",
            "",
            overrides,
            models,
            progress=progress,
            ensemble=False,
            keep_going=True,
            on_model=so_far,
        )
        record["sizes"].append(size)
        record["rows"] += rows(bench)
    return record


def merge_records(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``new`` over ``old``: the (size, family) pairs ``new`` measured replace ``old``'s
    rows, every other row is kept, and each row keeps the machine that measured it. So a
    column too long for one run (25M) fills up family by family."""
    if old.get("profile") != new.get("profile"):
        raise ConfigError(
            f"--merge: the existing record was measured with profile {old.get('profile')!r}, "
            f"this run with {new.get('profile')!r}; use the same --profile or another --out"
        )
    measured = {(r["ratings"], r["family"]) for r in new["rows"]}
    kept = [
        {"machine": old.get("machine", "")} | r
        for r in old["rows"]
        if (r["ratings"], r["family"]) not in measured
    ]
    sizes = {s["ratings"]: s for s in old["sizes"]} | {s["ratings"]: s for s in new["sizes"]}
    return {
        "machine": new["machine"],
        "profile": new.get("profile"),
        "sizes": [sizes[n] for n in sorted(sizes)],
        "rows": kept + new["rows"],  # the table keeps each row where it first appeared
    }


def _stage_rows(bench: dict[str, Any]) -> list[dict[str, Any]]:
    """One bench record as rows: preprocess, each family's train and evaluate, refusals."""

    def row(family: str, stage: str, seconds, peak, status: str = "ok") -> dict[str, Any]:
        return {
            "family": family,
            "stage": stage,
            "seconds": seconds,
            "peak_rss_mib": peak,
            "status": status,
        }

    rows = [
        row(stage, stage, bench[f"{stage}_seconds"], bench[f"{stage}_peak_rss_mib"])
        for stage in ("download", "preprocess")
        if f"{stage}_seconds" in bench
    ]
    for name, fit in bench["models"].items():
        train = row(name, "train", fit["train_seconds"], fit["peak_rss_mib"])
        train |= {"epochs": fit["epochs"], "seconds_per_epoch": fit["seconds_per_epoch"]}
        if fit.get("eval_refused"):
            judged = row(name, "evaluate", None, None, fit["eval_refused"])
        else:
            judged = row(name, "evaluate", fit["eval_seconds"], fit["peak_rss_mib"])
            judged |= {"test_rmse": fit["test_rmse"], "test_ndcg@10": fit["test_ndcg@10"]}
        rows += [train, judged]
    for name, why in (bench["skipped"] | bench["failed"]).items():
        rows.append(row(name, "train", None, None, why))
    return rows


def _quality(row: dict[str, Any]) -> str:
    if row.get("epochs") and row["epochs"] > 1:
        return f" ({row['epochs']} x {row['seconds_per_epoch']:.1f} s)"
    named = {"RMSE": row.get("test_rmse"), "NDCG@10": row.get("test_ndcg@10")}
    parts = [f"{key} {value:.4f}" for key, value in named.items() if value is not None]
    return f"; {', '.join(parts)}" if parts else ""


_MATMUL = re.compile(r"float32 matmul ([\d,.]+) GFLOP/s")


def _machine_key(machine: str) -> str:
    """A machine line without its measured matmul speed, which varies from run to run on
    the same machine (so runs there share one mark in the table)."""
    return _MATMUL.sub("float32 matmul {} GFLOP/s", machine)


def _matmul(machine: str) -> str:
    found = _MATMUL.search(machine)
    return found.group(1) if found else ""


def _legend(key: str, speeds: list[str]) -> str:
    measured = [v for v in speeds if v]
    if "{}" not in key or not measured:
        return key
    values = sorted(measured, key=lambda v: float(v.replace(",", "")))
    span = values[0] if len(values) == 1 else f"{values[0]}-{values[-1]}"
    return key.replace("{}", span)


_PROJECTED = re.compile(
    r"would take about (?P<time>.+?) here .*?over `(?P<param>[\w.]+)` = (?P<limit>[^;]+);"
)


def _refusal(status: str) -> str:
    """A refusal's cell: a time budget's projection in a few words, else the reason."""
    found = _PROJECTED.search(status)
    if found:
        return f"refused: ~{found['time']} projected, over {found['param']} = {found['limit']}"
    return f"refused: {status}"


def scale_table(record: dict[str, Any]) -> str:
    """Seconds and peak MiB per family and stage (rows) and size (columns)."""
    sizes = [s["ratings"] for s in record["sizes"]]
    where = [r.get("machine", record["machine"]) for r in record["rows"]]
    machines = list(dict.fromkeys(_machine_key(m) for m in where))
    speeds = {
        key: sorted({_matmul(m) for m in where if _machine_key(m) == key}) for key in machines
    }
    cells: dict[tuple[str, str], dict[int, str]] = {}
    for row in record["rows"]:
        cell = (
            f"{row['seconds']:.1f} s / {row['peak_rss_mib']:,.0f} MiB" + _quality(row)
            if row["seconds"] is not None
            else _refusal(row["status"])
        )
        if len(machines) > 1:
            cell += f" [{machines.index(_machine_key(row.get('machine', record['machine']))) + 1}]"
        cells.setdefault((row["family"], row["stage"]), {})[row["ratings"]] = cell
    head = " | ".join(f"{n:,} ratings" for n in sizes)
    profile = f" Profile: {record['profile']}." if record.get("profile") else ""
    where = (
        f"Machine: {_legend(machines[0], speeds[machines[0]])}."
        if len(machines) == 1
        else "Machines: "
        + "; ".join(f"[{i}] {_legend(m, speeds[m])}" for i, m in enumerate(machines, 1))
        + "."
    )
    lines = [
        f"{where}{profile} Seconds / peak resident memory of each "
        "child process; train: epochs x seconds each; evaluate: test RMSE and NDCG@10.",
        "",
        f"| family | stage | {head} |",
        "|---|---|" + "---:|" * len(sizes),
    ]
    data_first = sorted(cells, key=lambda fs: fs[0] not in ("download", "preprocess"))
    for family, stage in data_first:  # the data's rows first, then families as first seen
        by_size = cells[(family, stage)]
        lines.append(
            f"| {family} | {stage} | " + " | ".join(by_size.get(n, "") for n in sizes) + " |"
        )
    return "\n".join(lines) + "\n"


def write_scale(record: dict[str, Any], out: Path) -> None:
    """``OUT.json`` (the record), ``OUT.csv`` (the rows: the log-log DVC plot's data) and
    ``OUT.md`` (the table)."""
    write_json(out.with_suffix(".json"), record)
    columns = ["ratings", "users", "movies", "family", "stage", "seconds", "peak_rss_mib"]
    rows = [r for r in record["rows"] if r["seconds"] is not None]
    csv = [",".join(columns)] + [",".join(str(r[c]) for c in columns) for r in rows]
    write_text(out.with_suffix(".csv"), "\n".join(csv) + "\n")
    write_text(out.with_suffix(".md"), scale_table(record))
