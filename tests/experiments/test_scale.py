"""`movierec bench --scale`: MovieLens-shaped sizes, every stage timed, refusals recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from movierec.cli import main
from movierec.config.params import ConfigError
from movierec.experiments.scale import parse_sizes, shape

ROOT = Path(__file__).resolve().parents[2]


def test_shapes_are_movielens_at_1m_and_25m():
    assert shape(1_000_209) == (6_040, 3_706)
    users, movies = shape(25_000_095)
    assert abs(users - 162_541) <= 2 and abs(movies - 62_423) <= 2


@given(st.integers(100, 30_000_000))
def test_every_size_fits_the_generator_and_grows(n):
    users, movies = shape(n)
    assert n <= users * movies // 2  # the synthetic generator needs a half-empty grid
    bigger = shape(n * 2)
    assert bigger[0] >= users and bigger[1] >= movies


def test_sizes_parse_and_bad_ones_are_one_line():
    assert parse_sizes("1M, 100k,2.5M,100k") == [100_000, 1_000_000, 2_500_000]
    with pytest.raises(ConfigError, match=r"--sizes: '1G' is not a size"):
        parse_sizes("100k,1G")
    with pytest.raises(ConfigError, match="too small"):
        parse_sizes("10")


def test_scale_times_every_stage_and_records_refusals(tmp_path, monkeypatch, capsys):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["models"]["mf_bias"]["epochs"] = 2
    params["models"]["ease"]["dense_max_items"] = 100  # the sparse variant past 100 movies
    params["models"]["mf"] |= {"lr": 1e30, "epochs": 1}  # diverges: refused at every size
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    profile = {"tiny": {"models": {"mf_bias": {"epochs": 1, "patience": 1}}}}
    (tmp_path / "profiles.yaml").write_text(yaml.safe_dump(profile))
    monkeypatch.chdir(tmp_path)
    main(
        ["bench", "--scale", "--sizes", "1500,6000", "--profile", "tiny"]
        + ["--models", "bias", "mf_bias", "ease", "mf"]
    )

    record = json.loads((tmp_path / "metrics" / "scale.json").read_text())
    assert [s["ratings"] for s in record["sizes"]] == [1500, 6000]
    rows = {(r["ratings"], r["family"], r["stage"]): r for r in record["rows"]}
    for n in (1500, 6000):
        assert rows[(n, "preprocess", "preprocess")]["peak_rss_mib"] > 0
        assert rows[(n, "download", "download")]["seconds"] >= 0  # generation: its own row
        for family in ("bias", "mf_bias"):
            for stage in ("train", "evaluate"):
                row = rows[(n, family, stage)]
                assert row["status"] == "ok" and row["seconds"] >= 0 and row["peak_rss_mib"] > 0
    assert record["profile"] == "tiny"  # the profile reaches every size
    assert all(rows[(n, "mf_bias", "train")]["epochs"] == 1 for n in (1500, 6000))
    assert rows[(6000, "mf_bias", "evaluate")]["test_rmse"] > 0
    movies = {s["ratings"]: s["movies"] for s in record["sizes"]}
    for n in (1500, 6000):
        assert rows[(n, "ease", "train")]["status"] == "ok"  # dense, then sparse
        refused = rows[(n, "mf", "train")]
        assert refused["seconds"] is None and "lower the learning rate" in refused["status"]
    assert any(movies[n] > 100 for n in movies)

    csv = (tmp_path / "metrics" / "scale.csv").read_text().splitlines()
    assert csv[0] == "ratings,users,movies,family,stage,seconds,peak_rss_mib"
    assert len(csv) - 1 == sum(r["seconds"] is not None for r in record["rows"])
    table = (tmp_path / "metrics" / "scale.md").read_text()
    assert "| mf | train |" in table and "refused:" in table
    assert "| preprocess | preprocess |" in capsys.readouterr().out

    # A later run of one family at one size fills in without losing the rest.
    main(
        ["bench", "--scale", "--sizes", "1500", "--profile", "tiny", "--models", "bias", "--merge"]
    )
    merged = json.loads((tmp_path / "metrics" / "scale.json").read_text())
    again = {(r["ratings"], r["family"], r["stage"]) for r in merged["rows"]}
    assert again == set(rows)
    assert [s["ratings"] for s in merged["sizes"]] == [1500, 6000]


def test_the_machine_line_names_the_cpu_and_its_matmul_speed():
    """Timings from two machines compare only with the processor and its speed beside them."""
    from movierec.experiments.bench import machine, matmul_gflops

    line = machine()
    assert "cores (float32 matmul " in line and " GFLOP/s on " in line
    assert 0.1 < matmul_gflops(n=256, repeats=2) < 1e6


def _record(machine: str, cells: dict[tuple[int, str], float], profile: str = "ml-25m") -> dict:
    sizes = sorted({n for n, _ in cells})
    rows = [
        {"ratings": n, "family": family, "stage": stage, "seconds": seconds}
        | {"peak_rss_mib": 100.0, "status": "ok", "machine": machine}
        for (n, family), seconds in cells.items()
        for stage in ("train", "evaluate")
    ]
    shapes = [{"ratings": n, "users": 10, "movies": 10} for n in sizes]
    return {"machine": machine, "profile": profile, "sizes": shapes, "rows": rows}


def test_merge_replaces_only_what_the_new_run_measured_and_keeps_each_machine():
    from movierec.experiments.scale import merge_records, scale_table

    old = _record("A", {(1000, "bias"): 1.0, (1000, "ease"): 2.0, (5000, "ease"): 3.0})
    new = _record("B", {(5000, "ease"): 4.0, (25000, "ease"): 9.0})
    merged = merge_records(old, new)
    assert [s["ratings"] for s in merged["sizes"]] == [1000, 5000, 25000]
    cells = {(r["ratings"], r["family"], r["stage"]): r for r in merged["rows"]}
    assert len(cells) == len(merged["rows"]) == 8
    assert cells[(5000, "ease", "train")]["seconds"] == 4.0  # remeasured
    assert cells[(1000, "ease", "train")]["machine"] == "A"  # kept, with its machine
    assert cells[(25000, "ease", "evaluate")]["machine"] == "B"
    table = scale_table(merged)
    assert "Machines: [1] A; [2] B." in table
    assert (
        "| ease | train | 2.0 s / 100 MiB [1] | 4.0 s / 100 MiB [2] | 9.0 s / 100 MiB [2] |"
        in table
    )
    with pytest.raises(ConfigError, match="--profile"):
        merge_records(old, _record("B", {(5000, "ease"): 4.0}, profile="tiny"))


def test_runs_on_one_machine_share_its_mark_whatever_its_measured_speed():
    from movierec.experiments.scale import merge_records, scale_table

    line = "EPYC, 2 cores (float32 matmul {} GFLOP/s on 2 threads), no GPU"
    old = _record(line.format(148), {(1000, "bias"): 1.0})
    new = _record(line.format(141), {(5000, "bias"): 2.0})
    table = scale_table(merge_records(old, new))
    assert table.startswith("Machine: EPYC, 2 cores (float32 matmul 141-148 GFLOP/s on 2 threads)")
    assert "[1]" not in table and "[2]" not in table


def test_a_run_reports_each_family_as_it_finishes(tmp_path, monkeypatch):
    """What a long run has measured is written before it goes on (a stopped run keeps it)."""
    from movierec.experiments.scale import run_scale

    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    seen: list[list[tuple[str, str]]] = []
    run_scale(
        tmp_path,
        [1500],
        ["bias", "pop"],
        progress=False,
        on_size=lambda record: seen.append([(r["family"], r["stage"]) for r in record["rows"]]),
    )
    data = [("download", "download"), ("preprocess", "preprocess")]
    assert seen == [
        data,
        data + [("bias", "train"), ("bias", "evaluate")],
        data + [("bias", "train"), ("bias", "evaluate"), ("pop", "train"), ("pop", "evaluate")],
    ]


def test_a_time_budget_refuses_a_family_and_the_table_says_by_how_much(tmp_path, monkeypatch):
    """`--max-hours`: a family projected past it is a refusal with its projection, the
    others are measured as usual."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["models"]["mf"]["epochs"] = 2
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    # 1e-9 h: the first epoch's full measurement (no probe wait) projects past it
    main(["bench", "--scale", "--sizes", "1500", "--models", "bias", "mf", "--max-hours", "1e-9"])
    record = json.loads((tmp_path / "metrics" / "scale.json").read_text())
    rows = {(r["family"], r["stage"]): r for r in record["rows"]}
    assert rows[("bias", "evaluate")]["status"] == "ok"  # no Trainer; far inside the probe
    refused = rows[("mf", "train")]
    assert refused["seconds"] is None
    assert refused["status"].startswith("training mf (2 epochs at most) would take about")
    assert "`train.max_hours` = 1e-09 h" in refused["status"]
    table = (tmp_path / "metrics" / "scale.md").read_text()
    assert "refused: ~0 s projected, over train.max_hours = 1e-09 h" in table


def test_an_evaluation_refused_keeps_the_training_row():
    from movierec.experiments.scale import _stage_rows

    fit = {
        "train_seconds": 12.0,
        "peak_rss_mib": 900.0,
        "epochs": 3,
        "seconds_per_epoch": 4.0,
        "eval_seconds": None,
        "test_rmse": None,
        "test_ndcg@10": None,
        "eval_refused": "ranking all 9 movies for 5 users with mlp would take about 3.4 h "
        "here (projected from its first 6 s), over `evaluate.max_hours` = 1 h; evaluate on "
        "a machine with a GPU, or raise `evaluate.max_hours` (0 = no limit)",
    }
    bench = {"preprocess_seconds": 1.0, "preprocess_peak_rss_mib": 5.0, "models": {"mlp": fit}}
    rows = {
        (r["family"], r["stage"]): r for r in _stage_rows(bench | {"skipped": {}, "failed": {}})
    }
    assert rows[("mlp", "train")]["seconds"] == 12.0
    assert rows[("mlp", "evaluate")]["seconds"] is None
    assert "evaluate.max_hours" in rows[("mlp", "evaluate")]["status"]


def test_a_child_killed_by_the_kernel_says_so(tmp_path):
    """An out-of-memory kill leaves no last line; the record still says what happened."""
    from movierec.errors import MovierecError
    from movierec.experiments.bench import _child

    code = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    with pytest.raises(
        MovierecError, match=r"sasrec failed: killed by SIGKILL \(out of memory\?\)"
    ):
        _child(tmp_path, {}, "sasrec", code)
