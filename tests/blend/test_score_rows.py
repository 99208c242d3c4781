"""Saved score rows: the evaluate stage writes each model's full rows, the blends read them
instead of scoring every member again, and rows that do not belong are never used."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from movierec.blend.ensemble import run_ensemble
from movierec.blend.saved_rows import WithSavedRows, with_saved_rows
from movierec.blend.topn import run_topn_blend
from movierec.config.params import ConfigError, load_params
from movierec.data.processed import load_processed
from movierec.models.trained import load_model
from movierec.pipeline.evaluate_step import evaluate_model
from movierec.pipeline.train_step import train_model
from movierec.store.paths import MODELS_DIR, SCORES_DIR

MEMBERS = ("bias", "mf_bias", "item_knn")


def _set(project, section: str, **values) -> None:
    path = project / "params.yaml"
    raw = yaml.safe_load(path.read_text())
    raw[section] = (raw.get(section) or {}) | values
    path.write_text(yaml.safe_dump(raw))


@pytest.fixture
def evaluated(tiny_project):
    _set(tiny_project, "ensemble", models=list(MEMBERS))
    _set(tiny_project, "ensemble_topn", models=list(MEMBERS))
    params = load_params()
    for name in MEMBERS:
        train_model(name, params)
        evaluate_model(name, params)
    return tiny_project


def test_saved_rows_are_the_models_rows(evaluated):
    params, data = load_params(), load_processed()
    for name in MEMBERS:
        meta = json.loads((SCORES_DIR / name / "meta.json").read_text())
        assert meta["saved"] and meta["data"] == data.fingerprint()
        model = load_model(name, params, data)
        wrapped = with_saved_rows(name, model, data, MODELS_DIR)
        assert isinstance(wrapped, WithSavedRows)
        users = np.arange(data.n_users)
        np.testing.assert_array_equal(wrapped.score_users(users), model.score_users(users))


def test_blends_from_saved_rows_equal_blends_that_score_members(evaluated, monkeypatch, capsys):
    params = load_params()
    saved = {"ensemble": run_ensemble(params), "ensemble_topn": run_topn_blend(params)}
    assert "scoring every movie again" not in capsys.readouterr().err  # all rows were saved
    monkeypatch.setattr(WithSavedRows, "score_users", lambda self, u: self.model.score_users(u))
    scored = {"ensemble": run_ensemble(params), "ensemble_topn": run_topn_blend(params)}
    for blend in saved:
        a, b = saved[blend]["test"], scored[blend]["test"]
        for key in ("ndcg@10", "recall@10", "coverage@10", "rmse"):
            assert a.get(key) == pytest.approx(b.get(key), abs=1e-9), (blend, key)


def test_rows_of_another_model_file_are_not_used(evaluated, capsys):
    params, data = load_params(), load_processed()
    model = load_model("mf_bias", params, data)
    with open(MODELS_DIR / "mf_bias" / "model.npz", "ab") as handle:
        handle.write(b"retrained")  # the model file changed after its evaluate stage
    assert with_saved_rows("mf_bias", model, data, MODELS_DIR) is model
    assert "mf_bias: scoring every movie again" in capsys.readouterr().err


def test_rows_over_the_size_limit_are_not_written(tiny_project, capsys):
    _set(tiny_project, "evaluate", save_rows_mib=0)
    params = load_params()
    train_model("bias", params)
    evaluate_model("bias", params)
    meta = json.loads((SCORES_DIR / "bias" / "meta.json").read_text())
    assert not meta["saved"] and "evaluate.save_rows_mib=0" in meta["reason"]
    assert not (SCORES_DIR / "bias" / "rows.npy").exists()
    data = load_processed()
    model = load_model("bias", params, data)
    assert with_saved_rows("bias", model, data, MODELS_DIR) is model
    assert "over evaluate.save_rows_mib" in capsys.readouterr().err


def test_negative_size_limit_is_refused(tiny_project):
    _set(tiny_project, "evaluate", save_rows_mib=-1)
    with pytest.raises(ConfigError, match="evaluate.save_rows_mib"):
        evaluate_model("bias", load_params())


def test_embed_saves_word2vecs_rows_and_the_blend_reads_them(tiny_project, capsys):
    """word2vec is fitted by its own stage; its rows are saved there, so the ranking blend
    does not score every movie with it again on each run."""
    from movierec.pipeline.embed_step import run_embed_stage

    params, data = load_params(), load_processed()
    run_embed_stage(params)
    meta = json.loads((SCORES_DIR / "word2vec" / "meta.json").read_text())
    assert meta["saved"] and meta["data"] == data.fingerprint()
    model = load_model("word2vec", params, data)
    wrapped = with_saved_rows("word2vec", model, data, MODELS_DIR)
    assert isinstance(wrapped, WithSavedRows)
    assert "scoring every movie again" not in capsys.readouterr().err
    users = np.arange(data.n_users)
    np.testing.assert_array_equal(wrapped.score_users(users), model.score_users(users))
    (MODELS_DIR / "word2vec" / "vectors.kv").write_bytes(b"another state")
    assert with_saved_rows("word2vec", model, data, MODELS_DIR) is model
