"""The leaderboard: two tables (rating accuracy, top-N) built from ``metrics/details``.

Validation selects, test reports: each table is sorted by its test metric for
reading, but the model marked as selected (and served by ``movierec recommend``
/ ``predict``) is the best on **validation**. No torch, no models imported.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from movierec.store.files import reading, write_json, write_text
from movierec.store.paths import CURVES, DETAILS, METRICS, SIGNIFICANCE, TRAIN_METRICS
from movierec.store.results import read_details

RATING = ("rmse", "mae", "rmse_rounded")
TOPN = ("ndcg", "recall", "precision", "map", "hit", "coverage")


def _selectable(row: dict[str, Any]) -> bool:
    """A model judged on a subset of users, or fitted on val (its val numbers are
    in-sample), cannot be chosen by val against the others."""
    return "subset" not in row and not row.get("val_in_sample")


def _ties(path: Path, metric: str) -> set[str]:
    """Models not significantly worse than the best on test (from ``significance.json``)."""
    if not path.is_file():
        return set()
    with reading(path):
        table = json.loads(path.read_text()).get(metric) or {}
    return set(table.get("not_significantly_worse_than_best", []))


def build_leaderboard(
    details: Path = DETAILS,
    k: int = 10,
    significance: Path = SIGNIFICANCE,
    exclude: set[str] = frozenset(),
) -> dict[str, Any]:
    """``{"rating": rows, "topn": rows, "selected": {...}}`` from every model's details
    but ``exclude`` (and, where ``significance.json`` exists, which models tie with the
    best on test)."""
    rating, topn = [], []
    made = {}
    for result in read_details(details):
        if result["model"] in exclude:
            continue
        if result.get("made_from"):
            made[result["model"]] = result["made_from"]
        val, test = result.get("val", {}), result.get("test", {})
        row: dict[str, Any] = {"model": result["model"]}
        if "subset" in result:
            row["subset"] = ", ".join(f"{a}={b}" for a, b in result["subset"]["filter"].items())
        if result.get("val_in_sample"):
            row["val_in_sample"] = True
        if result.get("val_cross_fitted"):
            row["val_cross_fitted"] = True
        if test.get("rmse") is not None:
            rating.append(row | {"val_rmse": val.get("rmse")} | {m: test.get(m) for m in RATING})
        if test.get(f"ndcg@{k}") is not None:
            topn.append(
                row
                | {f"val_ndcg@{k}": val.get(f"ndcg@{k}")}
                | {f"{m}@{k}": test.get(f"{m}@{k}") for m in TOPN}
                | {m: test.get(m) for m in (f"novelty@{k}", f"popularity@{k}") if m in test}
            )
    rating.sort(key=lambda r: (r["rmse"], r["model"]))
    topn.sort(key=lambda r: (-r[f"ndcg@{k}"], r["model"]))
    for rows, metric in ((rating, "rmse"), (topn, f"ndcg@{k}")):
        tied = _ties(significance, metric)
        for r in rows:
            if r["model"] in tied:
                r["tied_with_best"] = True
    selected = {
        "rating": _best(rating, "val_rmse", lower=True),
        "topn": _best(topn, f"val_ndcg@{k}", lower=False),
    }
    return {"k": k, "selected": selected, "rating": rating, "topn": topn, "made_from": made}


def _best(rows: list[dict[str, Any]], key: str, lower: bool) -> str | None:
    candidates = [r for r in rows if _selectable(r) and r.get(key) is not None]
    if not candidates:
        return None
    sign = 1.0 if lower else -1.0
    return min(candidates, key=lambda r: (sign * r[key], r["model"]))["model"]


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _table(rows: list[dict[str, Any]], columns: dict[str, str], chosen: str | None) -> list[str]:
    lines = ["| model | " + " | ".join(columns.values()) + " |", "|---|" + "---:|" * len(columns)]
    for r in rows:
        name = f"{r['model']} (subset {r['subset']})" if r.get("subset") else r["model"]
        if r.get("val_in_sample"):
            name += " (val in-sample)"
        if r.get("val_cross_fitted"):
            name += " (val cross-fitted)"
        if r["model"] == chosen:
            name = f"**{name}** ✓"
        if r.get("tied_with_best"):
            name += " ≈"
        lines.append("| " + " | ".join([name, *(_fmt(r.get(c)) for c in columns)]) + " |")
    return lines


def board_tables(board: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The leaderboard's two markdown tables (rating accuracy, top-N), as lines: what
    ``leaderboard.md`` shows and what the docs' generated tables show."""
    k = board["k"]
    rating_cols = {"val_rmse": "val RMSE", "rmse": "test RMSE", "mae": "MAE"}
    rating_cols["rmse_rounded"] = "RMSE (rounded)"
    topn_cols = {f"val_ndcg@{k}": f"val NDCG@{k}", f"ndcg@{k}": f"test NDCG@{k}"}
    topn_cols |= {f"{m}@{k}": f"{m.capitalize() if m != 'map' else 'MAP'}@{k}" for m in TOPN[1:]}
    if any(f"novelty@{k}" in r for r in board["topn"]):
        topn_cols |= {f"novelty@{k}": f"novelty@{k}", f"popularity@{k}": f"mean popularity@{k}"}
    sel = board["selected"]
    return (
        _table(board["rating"], rating_cols, sel["rating"]),
        _table(board["topn"], topn_cols, sel["topn"]),
    )


def write_leaderboard(board: dict[str, Any], title: str, out_dir: Path = METRICS) -> None:
    """``leaderboard.json`` (for the CLI), ``leaderboard.md`` (to read), ``.csv`` (for plots)."""
    k = board["k"]
    write_json(out_dir / "leaderboard.json", board | {"title": title})
    rating, topn = board_tables(board)
    lines = [
        f"# Leaderboard ({title})",
        "",
        "✓ marks the model that validation selects (what `movierec predict` and "
        "`movierec recommend` serve by default); rows are sorted by the test metric. "
        "Blends fitted on val have in-sample val numbers and are not selectable by them; "
        "the ranking blend's val numbers are cross-fitted (weights fitted on other val "
        "users), so it competes. Ranking families predict no ratings (no RMSE row). "
        "≈ marks a model whose test difference from the table's top model is not "
        "significant (paired tests over users, `metrics/significance.md`).",
        "",
        "## Rating accuracy (sorted by test RMSE)",
        "",
        *rating,
        "",
        f"## Top-{k} recommendation (full ranking, sorted by test NDCG@{k})",
        "",
        *topn,
        "",
    ]
    write_text(out_dir / "leaderboard.md", "\n".join(lines))
    csv = ["model,rmse,ndcg"]
    names = {r["model"] for r in board["rating"]} | {r["model"] for r in board["topn"]}
    rmse = {r["model"]: r["rmse"] for r in board["rating"]}
    ndcg = {r["model"]: r[f"ndcg@{k}"] for r in board["topn"]}
    for name in sorted(names):
        cells = [rmse.get(name), ndcg.get(name)]
        csv.append(",".join([name, *("" if v is None else f"{v:.4f}" for v in cells)]))
    write_text(out_dir / "leaderboard.csv", "\n".join(csv) + "\n")


def _curve_of(name: str) -> str | None:
    """Which curve table a training log belongs to: the val metric that selects the
    epoch (``rmse``: val RMSE of rating models, ``ndcg``: val NDCG@k of rankers) or the
    training ``loss``. Short names: the plots page repeats a row's file name in every
    point it draws, and the page is kept under 1 MB."""
    if name == "val_rmse":
        return "rmse"
    if name == "train_loss":
        return "loss"
    return "ndcg" if name.startswith("val_ndcg@") else None


def write_curves(train_dir: Path = TRAIN_METRICS, out: Path = CURVES):
    """One table per curve (``curves.rmse.csv``, ``.ndcg.csv``, ``.loss.csv``: model, epoch,
    value to 4 significant digits) of every iterative model, so each chart holds one
    metric and reads only its own rows; one-shot models have no curve."""
    tables: dict[str, list[str]] = {n: ["model,epoch,value"] for n in CURVE_TABLES}
    for folder in (
        sorted(p for p in train_dir.iterdir() if p.is_dir()) if train_dir.is_dir() else []
    ):
        logs = folder / "plots" / "metrics"
        for path in sorted(logs.glob("*.tsv")) if logs.is_dir() else []:
            table = _curve_of(path.stem)
            if table is None:
                continue
            for row in path.read_text().splitlines()[1:]:
                step, value = row.split("\t")[:2]
                tables[table].append(f"{folder.name},{int(step) + 1},{float(value):.4g}")
    for name, lines in tables.items():
        write_text(curve_table(name, out), "\n".join(lines) + "\n")


def curve_table(name: str, curves: Path = CURVES) -> Path:
    """``metrics/curves.<name>.csv``: beside the leaderboard, written by the same stage."""
    return curves.with_name(f"{curves.name}.{name}.csv")


CURVE_TABLES = ("rmse", "ndcg", "loss")
