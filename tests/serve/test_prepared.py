"""The blends answer from rows prepared at load: every known user gets the list the
blend scoring its members per request gives, and the API's answers are the same."""

from __future__ import annotations

import numpy as np
import yaml
from fastapi.testclient import TestClient

from movierec.blend.ensemble import run_ensemble
from movierec.blend.topn import run_topn_blend
from movierec.data.processed import load_processed
from movierec.evaluation.leaderboard import build_leaderboard, write_leaderboard
from movierec.pipeline.evaluate_step import evaluate_model
from movierec.pipeline.params import load_params
from movierec.pipeline.train_step import train_model
from movierec.serve.api import Served, create_app
from movierec.serve.prepared import PreparedRows, prepared
from movierec.serve.recommend import load_served
from movierec.store.paths import METRICS
from movierec.topk import top_k

MEMBERS = ("bias", "mf_bias", "item_knn", "ease")


def _blended_project(project) -> None:
    path = project / "params.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["ensemble"] = (raw.get("ensemble") or {}) | {"models": ["bias", "mf_bias", "item_knn"]}
    raw["ensemble_topn"] = (raw.get("ensemble_topn") or {}) | {"models": list(MEMBERS)}
    path.write_text(yaml.safe_dump(raw))
    params = load_params()
    for name in MEMBERS:
        train_model(name, params)
        evaluate_model(name, params)
    run_ensemble(params)
    run_topn_blend(params)
    write_leaderboard(build_leaderboard(), "tiny", METRICS)


def test_prepared_blends_rank_every_user_as_the_blend_itself(tiny_project):
    _blended_project(tiny_project)
    params, data = load_params(), load_processed()
    served = Served.load(params, ["ensemble_topn", "ensemble", "ease"])
    for name in ("ensemble_topn", "ensemble"):
        fast = served.models[name]
        assert isinstance(fast, PreparedRows) and fast.wait(60)
        itself = load_served(name, params, data)
        for user in range(data.n_users):
            one = np.array([user])
            a, b = fast.score_users(one), np.asarray(itself.score_users(one), dtype=np.float32)
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
            assert np.array_equal(top_k(a, 10), top_k(b, 10)), (name, user)


def test_the_api_answers_the_same_from_prepared_rows(tiny_project, monkeypatch):
    _blended_project(tiny_project)
    params, data = load_params(), load_processed()
    users = [str(u) for u in data.users["user_id"][:25]]

    def answers() -> list:
        served = Served.load(params, ["ensemble_topn", "ease"])
        getattr(served.models["ensemble_topn"], "wait", lambda: True)()
        app = create_app(served)
        client = TestClient(app, base_url="http://localhost")
        got = [client.get(f"/api/users/{u}/recommendations?model=ensemble_topn") for u in users]
        assert all(a.status_code == 200 for a in got)
        return [a.json() for a in got]

    fast = answers()
    monkeypatch.setattr("movierec.serve.api.prepared", lambda model, *_: model)
    assert answers() == fast


def test_rows_over_the_budget_stay_per_request(tiny_project):
    class Model:
        def score_users(self, users):
            return np.zeros((len(users), 3), dtype=np.float32)

    model = Model()
    assert prepared(model, 10**6, 10**5, budget_mib=512) is model
    rows = prepared(model, 100, 3)
    assert isinstance(rows, PreparedRows) and rows.wait(10) and rows.rows_.shape == (100, 3)
