"""The CI reproducibility check: which metric moves fail it."""

from __future__ import annotations

from pathlib import Path

from movierec.reprocheck import Tolerance, compare

ROOT = Path(__file__).resolve().parents[1]


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
    """Every metric DVC compares has its own measured tolerance (bench/repro_tolerance.py);
    only a metric added since falls back to the default."""
    import json

    tol = Tolerance.load(ROOT / "repro-tolerance.yaml")
    assert tol.limit("metrics/eval/mf.json:test.topn_seconds") is None
    for path in sorted((ROOT / "metrics" / "eval").glob("*.json")):
        for split, values in json.loads(path.read_text()).items():
            for key in values:
                name = f"metrics/eval/{path.name}:{split}.{key}"
                assert name in tol.tolerances, name
                assert 0.0005 <= tol.limit(name) <= 0.02, name
