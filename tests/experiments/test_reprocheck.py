"""The CI reproducibility check: which metric moves fail it."""

from __future__ import annotations

from pathlib import Path

import pytest

from movierec.experiments.reprocheck import Tolerance, compare

ROOT = Path(__file__).resolve().parents[2]


def _tol() -> Tolerance:
    return Tolerance(0.002, ["*seconds*"], {"metrics/embed.json:*": 0.01})


def test_small_moves_pass_large_moves_fail():
    diff = {
        "metrics/eval/mf.json": {
            "test.rmse": {"old": 0.9001, "new": 0.9010, "diff": 0.0009},
            "test.ndcg@10": {"old": 0.10, "new": 0.11, "diff": 0.01},
            "train_seconds": {"old": 3.0, "new": 9.0, "diff": 6.0},
        },
        "metrics/embed.json": {"next_movie.hit@10": {"old": 0.50, "new": 0.505, "diff": 0.005}},
    }
    bad = compare(diff, _tol())
    assert [name for name, *_ in bad] == ["metrics/eval/mf.json:test.ndcg@10"]


def test_appearing_or_vanishing_metrics_fail():
    diff = {"metrics/eval/bst.json": {"test.rmse": {"old": None, "new": 0.92}}}
    assert compare(diff, _tol())[0][0] == "metrics/eval/bst.json:test.rmse"


def test_committed_tolerance_file_covers_every_metric_with_a_measured_value():
    """Every metric DVC compares has its own tolerance, measured across machines
    (bench/repro_tolerance.py); only a metric added since falls back to the default."""
    import json

    tol = Tolerance.load(ROOT / "repro-tolerance.yaml")
    assert tol.limit("metrics/eval/mf.json:test.topn_seconds") is None
    for path in sorted((ROOT / "metrics" / "eval").glob("*.json")):
        for split, values in json.loads(path.read_text()).items():
            for key in values:
                name = f"metrics/eval/{path.name}:{split}.{key}"
                assert name in tol.tolerances, name
                # measured: rounding for most, more for families whose early stopping
                # flips on a last bit (deep_autorec's ranking metrics), never unbounded
                assert 0.0005 <= tol.limit(name) <= 0.05, name
    assert tol.measured_on, "repro-tolerance.yaml names the runs it was measured on"


def test_each_metric_is_identical_within_noise_or_moved():
    from movierec.experiments.reprocheck import IDENTICAL, MOVED, NOISE, classify

    diff = {
        "metrics/eval/mf.json": {
            "test.rmse": {"old": 0.9001, "new": 0.9001},
            "val.rmse": {"old": 0.9001, "new": 0.9005},
            "test.ndcg@10": {"old": 0.10, "new": 0.11},
            "val.ndcg@10": {"old": float("nan"), "new": float("nan")},
        },
    }
    kinds = {v.name.split(":")[1]: v.kind for v in classify(diff, _tol())}
    assert kinds == {
        "test.rmse": IDENTICAL,
        "val.rmse": NOISE,
        "test.ndcg@10": MOVED,
        "val.ndcg@10": IDENTICAL,
    }


def test_the_report_counts_each_kind_and_scales_a_move_by_the_bootstrap_interval(
    tmp_path, monkeypatch
):
    import numpy as np
    import polars as pl

    from movierec.experiments.reprocheck import classify, noise_scale, report

    rng = np.random.default_rng(0)
    n = 400
    per_user = tmp_path / "data" / "per_user"
    per_user.mkdir(parents=True)
    pl.DataFrame(
        {
            "split": ["test"] * n,
            "user": np.arange(n),
            "ratings": np.full(n, 10),
            "sse": rng.uniform(5, 12, n),
            "ndcg@10": rng.uniform(0, 1, n),
        }
    ).write_parquet(per_user / "mf.parquet")
    monkeypatch.chdir(tmp_path)
    scale = noise_scale("metrics/eval/mf.json:test.ndcg@10")
    # the mean of n uniform(0, 1) values: sd 0.289 / sqrt(n), 95% half-width about 1.96 x that
    assert scale == pytest.approx(1.96 * 0.2887 / np.sqrt(n), rel=0.15)
    diff = {
        "metrics/eval/mf.json": {
            "test.ndcg@10": {"old": 0.50, "new": 0.51},
            "test.rmse": {"old": 0.9, "new": 0.9},
        }
    }
    lines = report(classify(diff, _tol()), "HEAD", Path("repro-tolerance.yaml"))
    assert lines[0].startswith("check-repro: 2 metrics vs HEAD: 1 identical, 0 within measured")
    row = next(line for line in lines if line.startswith("| metrics/eval/mf.json:test.ndcg@10"))
    assert row.endswith(f"| {scale:.4f} | {0.01 / scale:.2f} |")


def test_untracked_files_are_not_changes(tmp_path, monkeypatch):
    import subprocess

    from movierec.experiments.reprocheck import edited_inputs

    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "params.yaml").write_text("seed: 1\n")
    subprocess.run([*git, "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=tmp_path, check=True)
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "dvc.lock").write_text("changed")
    monkeypatch.chdir(tmp_path)
    assert edited_inputs() == []
    (tmp_path / "params.yaml").write_text("seed: 2\n")
    assert edited_inputs() == ["params.yaml"]


def test_the_machine_record_names_what_differs():
    from movierec.experiments.reprocheck import machine_differences
    from movierec.train.machine import describe_machine

    here = describe_machine()
    assert {"cpu", "torch_cpu_kernels", "numpy"} <= set(here)
    committed = here | {"cpu": "AMD EPYC 7B13", "torch_cpu_kernels": "AVX2"}
    differs = machine_differences(committed, here)
    assert f"cpu: AMD EPYC 7B13 -> {here['cpu']}" in differs
    assert len(differs) == 2


def test_the_tolerances_cover_every_move_measured_across_machines():
    """repro-tolerance.yaml and the spread it was made from (bench/repro-spread.json) agree:
    each move any measured run showed, and the held-out run's, is within its tolerance."""
    import json

    tol = Tolerance.load(ROOT / "repro-tolerance.yaml")
    spread = json.loads((ROOT / "bench" / "repro-spread.json").read_text())
    assert set(tol.measured_on) <= set(spread["runs"])
    for label, moves in spread["runs"].items():
        for name, move in moves.items():
            assert move <= tol.limit(name), (label, name, move)
