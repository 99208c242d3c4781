"""`movierec compare` on two tiny experiment commits: signal, noise and changed test sets."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from movierec.cli import main as cli_main
from movierec.errors import ConfigError
from movierec.experiments.compare import Side, compare_sides
from movierec.experiments.repeats import parse_sweep, run_name, staged_hint, summarise
from movierec.store.results import write_per_user

USERS = np.arange(300)
RATINGS = np.random.default_rng(0).integers(1, 6, 300)


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout


def _commit(sse: dict[str, np.ndarray], message: str, ratings: np.ndarray = RATINGS) -> str:
    for model, err in sse.items():
        rmse = float(np.sqrt(err.sum() / ratings.sum()))
        ndcg = np.clip(1.0 - err / ratings / 4, 0, 1)
        Path("metrics/eval").mkdir(parents=True, exist_ok=True)
        Path(f"metrics/eval/{model}.json").write_text(
            json.dumps({"test": {"rmse": rmse, "ndcg@10": float(ndcg.mean())}})
        )
        columns = {"user": USERS, "ratings": ratings, "sse": err, "ndcg@10": ndcg}
        write_per_user(Path(f"data/per_user/{model}.parquet"), {"test": columns})
    _git("add", "-A")
    _git("commit", "-qm", message)
    return _git("rev-parse", "HEAD").strip()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for key, value in {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }.items():
        monkeypatch.setenv(key, value)
    _git("init", "-q")
    subprocess.run(["dvc", "init", "-q"], check=True)
    subprocess.run(["dvc", "config", "core.analytics", "false"], check=True)
    return tmp_path


def test_compare_tells_signal_from_noise(repo: Path, capsys):
    rng = np.random.default_rng(1)
    base = rng.random(300) * RATINGS
    mf, bias = base * 1.2, base * 1.5
    first = _commit({"mf": mf, "bias": bias}, "baseline")
    noisy = bias * (1 + 0.02 * rng.standard_normal(300))
    _commit({"mf": mf * 0.85, "bias": noisy}, "better mf")
    _git("update-ref", "refs/exps/ab/cdef/tidy-exp", "HEAD")  # as `dvc exp run -n tidy-exp`
    a, b = Side.load(first), Side.load("tidy-exp")
    rows = {(r["model"], r["metric"]): r for r in compare_sides(a, b, n_boot=500)}
    assert rows["mf", "rmse"]["verdict"] == "significantly better"
    assert rows["mf", "rmse"]["ci_high"] < 0
    assert rows["mf", "ndcg@10"]["verdict"] == "significantly better"
    assert rows["bias", "rmse"]["verdict"] == "not significant (noise)"
    cli_main(["compare", first, "HEAD", "--bootstrap", "300"])
    out = capsys.readouterr().out
    assert "| mf | rmse |" in out and "significantly better" in out


def test_changed_test_sets_are_not_paired_and_missing_values_are_named(repo: Path):
    err = np.random.default_rng(2).random(300) * RATINGS
    first = _commit({"mf": err}, "baseline")
    _commit({"mf": err}, "other split", ratings=RATINGS + 1)
    rows = compare_sides(Side.load(first), Side.load("HEAD"), n_boot=200)
    assert all(r["verdict"].startswith("untested: the test sets differ") for r in rows)
    Path("data/per_user/mf.parquet").unlink()  # the workspace has not produced them
    rows = compare_sides(Side.load(first), Side.load("workspace"), n_boot=200)
    assert all("no per-user values at workspace" in r["verdict"] for r in rows)


def test_unknown_revision_is_one_line(repo: Path, capsys):
    _commit({"mf": np.ones(300)}, "baseline")
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["compare", "no-such-rev"])
    assert exit_info.value.code != 0
    assert "neither a git revision nor a DVC experiment name" in capsys.readouterr().err


def test_summary_matches_scipys_t_interval():
    values = [0.91, 0.905, 0.912, 0.899, 0.908]
    out = summarise(values)
    lo, hi = stats.t.interval(0.95, 4, loc=np.mean(values), scale=stats.sem(values))
    assert out["ci_low"] == pytest.approx(lo) and out["ci_high"] == pytest.approx(hi)
    assert out["std"] == pytest.approx(np.std(values, ddof=1)) and out["runs"] == 5


def test_aggregate_over_fold_experiments(repo: Path, capsys):
    rng = np.random.default_rng(4)
    for fold in ("u1", "u2", "u3"):
        _commit({"mf": rng.random(300) * RATINGS, "bias": 2 * rng.random(300) * RATINGS}, fold)
        _git("update-ref", f"refs/exps/ab/cdef/fold-{fold}", "HEAD")
    cli_main(["aggregate", "fold-u1", "fold-u2", "fold-u3"])
    result = json.loads(Path("metrics/compare.json").read_text())
    mf = result["models"]["mf"]["rmse"]
    assert mf["runs"] == 3 and mf["ci_low"] < mf["mean"] < mf["ci_high"]
    assert len(mf["values"]) == 3
    text = capsys.readouterr().out
    assert text.index("| mf |") < text.index("| bias |")  # sorted by mean RMSE


def test_sweep_spec_is_checked():
    assert parse_sweep("data.split.fold=u1,u2") == ("data.split.fold", ["u1", "u2"])
    assert run_name("data.split.fold", "u1") == "fold-u1"
    with pytest.raises(ConfigError, match="KEY=V1,V2"):
        parse_sweep("seed=1")


def test_a_failed_repeat_run_names_a_staged_index_as_the_likely_cause(tmp_path):
    """An interrupted `dvc exp run` leaves its files staged and the next one fails on
    applying them; the failure then says how to clear the index."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "params.yaml").write_text("seed: 1\n")
    assert staged_hint(tmp_path) == ""  # nothing staged: the plain failure message
    subprocess.run(["git", "add", "params.yaml"], check=True, cwd=tmp_path)
    assert re.search(r"1 staged change\(s\).*git reset", staged_hint(tmp_path))


def test_render_reads_from_the_first_to_the_second_and_folds_unchanged_models():
    from types import SimpleNamespace

    from movierec.experiments.compare import render

    a, b = SimpleNamespace(rev="main"), SimpleNamespace(rev="workspace")
    rows = [
        {"model": "bias", "metric": "rmse", "a": 0.95, "b": 0.94, "change": -0.01,
         "p_holm": 0.01, "ci_low": -0.02, "ci_high": -0.005, "verdict": "significantly better"},
        {"model": "ease", "metric": "ndcg@10", "a": 0.34, "b": 0.34, "change": 0.0,
         "p_holm": 1.0, "verdict": "unchanged"},
        {"model": "pop", "metric": "ndcg@10", "a": 0.13, "b": 0.13, "change": 0.0,
         "p_holm": 1.0, "verdict": "unchanged"},
    ]
    text = render(a, b, rows)
    assert text.startswith("# main -> workspace")
    assert "change = workspace minus main" in text
    assert "| bias | rmse | 0.9500 | 0.9400 | -0.0100" in text
    assert "| ease |" not in text and "| pop |" not in text
    assert "2 model(s) unchanged (identical figures): ease, pop." in text
