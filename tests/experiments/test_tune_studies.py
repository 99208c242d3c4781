"""Shared tuning studies: workers on one stored study, resuming, one-line refusals."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from movierec.cli import main
from movierec.config.params import load_params
from movierec.data.processed import load_processed
from movierec.experiments.tune import open_storage, tune


def _bias_space(project: Path) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["tune"]["spaces"]["bias"] = {
        "reg_user": ["float", 0.5, 20.0],
        "reg_item": ["float", 0.5, 20.0],
    }
    (project / "params.yaml").write_text(yaml.safe_dump(params))


def _worker(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "movierec", "tune", "--model", "bias", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | {"OMP_NUM_THREADS": "1"},
    )


def test_two_workers_share_one_journal_study_without_duplicates(tiny_project):
    _bias_space(tiny_project)
    workers = [_worker("--trials", "4", "--study", "shared", "--resume") for _ in range(2)]
    for w in workers:
        out, err = w.communicate(timeout=300)
        assert w.returncode == 0, err
        assert "study 'shared'" in out
    storage, where = open_storage(None)
    assert where == "data/tune/studies.journal"
    study = optuna.load_study(study_name="shared", storage=storage)
    trials = study.trials
    assert len(trials) == 8
    assert sorted(t.number for t in trials) == list(range(8))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    points = {tuple(sorted(t.params.items())) for t in trials}
    assert len(points) == 8, "two workers evaluated the same point"
    best = yaml.safe_load((tiny_project / "tuned" / "bias.yaml").read_text())["models"]["bias"]
    assert best["reg_user"] == pytest.approx(study.best_params["reg_user"])


def test_resume_continues_a_sqlite_study_and_reproduces_its_draws(tiny_project):
    _bias_space(tiny_project)
    params, data = load_params(), load_processed()
    url = f"sqlite:///{tiny_project / 'data' / 'tune' / 'studies.db'}"
    first = tune(params, data, "bias", 2, Path("a.yaml"), storage=url, study_name="s")
    assert first["trials"] == 2
    more = tune(params, data, "bias", 3, Path("b.yaml"), storage=url, study_name="s", resume=True)
    assert more["trials"] == 5
    again = tune(params, data, "bias", 5, Path("c.yaml"), storage=url, study_name="t")
    one = optuna.load_study(study_name="s", storage=url).trials
    two = optuna.load_study(study_name="t", storage=url).trials
    # a study resumed in steps draws what one run of it draws: seeds go by trial number
    assert [t.params for t in one] == [t.params for t in two]
    assert again["best_value"] == pytest.approx(more["best_value"])


def test_an_existing_study_is_not_silently_extended(tiny_project, capsys):
    _bias_space(tiny_project)
    main(["tune", "--model", "bias", "--trials", "1"])
    with pytest.raises(SystemExit) as stop:
        main(["tune", "--model", "bias", "--trials", "1"])
    assert stop.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        "error: study 'bias-synthetic' in data/tune/studies.journal already has 1 trial(s); "
        "pass --resume to continue it (or to join it from another worker), or --study NEW"
    )


def test_a_study_of_another_model_is_refused(tiny_project, capsys):
    _bias_space(tiny_project)
    main(["tune", "--model", "bias", "--trials", "1", "--study", "x"])
    with pytest.raises(SystemExit):
        main(["tune", "--model", "mf_bias", "--trials", "1", "--study", "x", "--resume"])
    assert "searches bias, not mf_bias" in capsys.readouterr().err


def test_an_unreachable_database_is_one_line(tiny_project, capsys):
    _bias_space(tiny_project)
    with pytest.raises(SystemExit):
        main(["tune", "--model", "bias", "--storage", "nosuchdb://host/x"])
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --storage nosuchdb://host/x: cannot open the study database")
    assert "\n" not in err
