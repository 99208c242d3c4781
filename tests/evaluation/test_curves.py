"""The curve tables the plots read: one metric per table (so one per chart), the
rankers' val NDCG included, and no t-SNE map among the default plots."""

from __future__ import annotations

from pathlib import Path

import yaml

from movierec.evaluation.leaderboard import write_curves

ROOT = Path(__file__).resolve().parents[2]


def _log(folder: Path, name: str, values: list[float]) -> None:
    path = folder / "plots" / "metrics" / f"{name}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [f"{step}\t{value}" for step, value in enumerate(values)]
    path.write_text("\n".join(["step\tvalue", *rows]) + "\n")


def test_each_curve_gets_its_own_table(tmp_path):
    train = tmp_path / "train"
    _log(train / "mf", "train_loss", [2.0, 1.5])
    _log(train / "mf", "val_rmse", [1.1, 1.0])
    _log(train / "mf", "val_mae", [0.9, 0.8])  # not a chart: left out
    _log(train / "sasrec", "train_loss", [7.0])
    _log(train / "sasrec", "val_ndcg@10", [0.2])
    (train / "ease").mkdir(parents=True)  # one-shot: no curve
    write_curves(train, tmp_path / "curves")
    tables = {p.name.split(".")[1]: p.read_text().splitlines() for p in tmp_path.glob("curves.*.csv")}
    assert tables["rmse"] == ["model,epoch,value", "mf,1,1.1", "mf,2,1"]
    assert tables["ndcg"] == ["model,epoch,value", "sasrec,1,0.2"]
    assert tables["loss"] == ["model,epoch,value", "mf,1,2", "mf,2,1.5", "sasrec,1,7"]


def test_default_plots_hold_one_metric_each_and_no_map():
    pipeline = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    sources = [next(iter(p.values()))["y"] for p in pipeline["plots"]]
    assert all(len(y) == 1 for y in sources)  # one table, one metric per chart
    tables = [next(iter(y)) for y in sources]
    assert "metrics/curves.ndcg.csv" in tables
    assert not any("insight" in t for t in tables)
    stages = pipeline["stages"]
    assert not any("plots" in stage for stage in stages.values() if isinstance(stage, dict))
