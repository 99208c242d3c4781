"""A hostile user against the server and the artifacts it reads: damaged models, a
model trained on another split or with other params, requests from other web sites,
sizes that would hang, ids and values read too loosely. Each case is one refusal of
one line (or JSON with a 4xx), and the server keeps serving the last good models."""

from __future__ import annotations

import json
import shutil
import threading
import time

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient
from served_project import SERVED, trained_project, wait_for

from movierec.cli import main as cli_main
from movierec.data.processed import load_processed
from movierec.errors import MovierecError
from movierec.pipeline.params import load_params
from movierec.serve.api import Reloads, Served, create_app
from movierec.store.paths import LEADERBOARD, MODELS_DIR

EASE = MODELS_DIR / "ease" / "model.npz"


def _client(app) -> TestClient:
    return TestClient(app, base_url="http://localhost")


def _user() -> str:
    return str(load_processed().users["user_id"][0])


def _other_family(path):
    shutil.copyfile(MODELS_DIR / "mf_bias" / "model.npz", path)


def _wrong_shape(path):
    with np.load(path) as f:
        state = {k: f[k] for k in f.files}
    big = max(state, key=lambda k: state[k].size)
    state[big] = np.ones((10, 10), dtype=state[big].dtype)
    with open(path, "wb") as handle:
        np.savez(handle, **state)


def _truncated(path):
    path.write_bytes(path.read_bytes()[:200])


def _garbage(path):
    path.write_bytes(b"not a model at all")


def _missing(path):
    path.unlink()


DAMAGE = {
    "another family's arrays": _other_family,
    "arrays of the wrong shape": _wrong_shape,
    "truncated": _truncated,
    "not a zip": _garbage,
    "missing": _missing,
}


@pytest.mark.parametrize("how", list(DAMAGE))
def test_a_damaged_model_is_one_line_naming_it(tiny_project, how):
    params = trained_project()
    DAMAGE[how](EASE)
    with pytest.raises(MovierecError) as refused:
        Served.load(params, ["ease", "bias"])
    line = str(refused.value)
    assert "\n" not in line and "data/models/ease" in line and "dvc repro train@ease" in line


def test_the_watcher_survives_damage_and_takes_the_next_good_file(tiny_project):
    params = trained_project()
    good = EASE.read_bytes()
    user = _user()
    with _client(create_app(Served.load(params), load_params, watch=0.05)) as client:
        before = client.get(f"/api/users/{user}/recommendations?model=ease").json()
        for how in ("another family's arrays", "arrays of the wrong shape", "truncated"):
            EASE.write_bytes(good)
            DAMAGE[how](EASE)
            assert wait_for(
                lambda: (client.get("/api/health").json()["last_reload"] or {}).get("ok") is False
            )
            health = client.get("/api/health").json()
            assert "data/models/ease" in health["last_reload"]["error"]
            answer = client.get(f"/api/users/{user}/recommendations?model=ease")
            assert answer.status_code == 200 and answer.json() == before
            client.post("/api/reload", json={})  # reset last_reload for the next round
        EASE.write_bytes(good)
        assert wait_for(lambda: client.get("/api/health").json()["last_reload"]["ok"] is True)
        assert client.get(f"/api/users/{user}/recommendations?model=ease").json() == before


def test_a_failed_reload_is_409_and_keeps_serving(tiny_project):
    params = trained_project()
    client = _client(create_app(Served.load(params), load_params))
    _other_family(EASE)
    answer = client.post("/api/reload", json={})
    assert answer.status_code == 409
    assert "data/models/ease/model.npz" in answer.json()["error"]
    assert client.get(f"/api/users/{_user()}/recommendations?model=ease").status_code == 200


def test_one_reload_at_a_time(tiny_project):
    reloads = Reloads(Served.load(trained_project()), load_params)
    with reloads.running:  # one is running: a second answers at once with what is served
        assert reloads.run("test") is None
    assert reloads.run("test") is True
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(reloads.run("t"))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers.count(True) >= 1 and set(answers) <= {True, None}


# ---------------------------------------------------------------- trained on what it claims


def _set(path, key: str, value) -> None:
    with open(path) as handle:
        params = yaml.safe_load(handle)
    *parents, last = key.split(".")
    section = params
    for part in parents:
        section = section[part]
    section[last] = value
    with open(path, "w") as handle:
        yaml.safe_dump(params, handle)


def test_a_model_trained_on_another_split_is_refused(tiny_project, capsys):
    from movierec.pipeline.evaluate_step import evaluate_model
    from movierec.pipeline.steps import preprocess
    from movierec.store.paths import RAW

    RAW.mkdir(parents=True, exist_ok=True)
    trained_project()
    _set("params.yaml", "data.split.ratios", [0.6, 0.2, 0.2])
    preprocess()
    with pytest.raises(MovierecError) as refused:
        evaluate_model("ease", load_params())
    line = str(refused.value)
    assert "\n" not in line and "trained on other data" in line
    assert "split.ratios: [0.8, 0.1, 0.1] then, [0.6, 0.2, 0.2] now" in line
    assert "rows_sha256" in line and "dvc repro train@ease" in line


def test_a_model_trained_with_other_params_is_refused(tiny_project):
    from movierec.pipeline.evaluate_step import evaluate_model

    trained_project()
    _set("params.yaml", "models.ease.lambda", 123.0)
    with pytest.raises(MovierecError) as refused:
        evaluate_model("ease", load_params())
    line = str(refused.value)
    assert "trained with other models.ease" in line and "lambda:" in line and "123.0 now" in line


def test_only_the_seed_differs_names_both_seeds(tiny_project):
    from movierec.models.trained import load_model

    params = trained_project()
    fit = MODELS_DIR / "ease" / "fit.json"
    record = json.loads(fit.read_text())
    record["data"]["seed"] = 7
    fit.write_text(json.dumps(record))
    with pytest.raises(MovierecError, match=r"seed: 7 then, 42 now"):
        load_model("ease", params, load_processed())


def test_a_stale_leaderboard_is_flagged(tiny_project):
    params = trained_project()
    client = _client(create_app(Served.load(params)))
    assert client.get("/api/models").json()["stale"] == {}
    board = json.loads(LEADERBOARD.read_text())
    board["made_from"]["ease"]["rows_sha256"] = "0" * 64
    board["made_from"]["bias"]["state_sha256"] = "0" * 64
    LEADERBOARD.write_text(json.dumps(board))
    stale = _client(create_app(Served.load(params))).get("/api/models").json()
    assert "other data" in stale["stale"]["ease"] and "earlier training" in stale["stale"]["bias"]
    rows = {r["model"]: r for r in stale["models"]}
    assert "stale" in rows["ease"] and "stale" not in rows["mf_bias"]


# ---------------------------------------------------------------- safe on localhost


@pytest.fixture
def client(tiny_project):
    return _client(create_app(Served.load(trained_project())))


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("evil.example", 421),
        ("evil.example:8000", 421),
        ("localhost.evil.example", 421),
        ("", 421),
        ("localhost:8000", 200),
        ("127.0.0.1:8000", 200),
        ("[::1]:8000", 200),
        ("192.168.1.20:8000", 200),
    ],
)
def test_the_host_header_must_name_this_server(client, host, status):
    answer = client.get("/api/health", headers={"host": host})
    assert answer.status_code == status
    if status != 200:
        assert set(answer.json()) == {"error"} and "--allow-host" in answer.json()["error"]


def test_a_host_allowed_by_flag(tiny_project):
    app = create_app(Served.load(trained_project()), hosts=("movies.lan",))
    assert _client(app).get("/api/health", headers={"host": "movies.lan:8000"}).status_code == 200
    assert _client(app).get("/api/health", headers={"host": "evil.example"}).status_code == 421


def test_a_post_must_be_json_from_this_origin(client):
    form = client.post("/api/reload", content=b"x=1", headers={"content-type": "text/plain"})
    assert form.status_code == 415 and "application/json" in form.json()["error"]
    bare = client.post("/api/reload")
    assert bare.status_code == 415
    other = client.post("/api/reload", json={}, headers={"origin": "http://evil.example"})
    assert other.status_code == 403 and set(other.json()) == {"error"}
    same = client.post("/api/reload", json={}, headers={"origin": "http://localhost"})
    assert same.status_code == 200


def test_a_huge_k_is_the_catalogue_at_once(client):
    n = load_processed().n_items
    start = time.perf_counter()
    answer = client.get(f"/api/users/{_user()}/recommendations?k=1000000000&model=ease")
    assert time.perf_counter() - start < 5.0  # padded to k: minutes and gigabytes
    recs = answer.json()["recommendations"]
    assert answer.status_code == 200 and 0 < len(recs) <= n
    huge = client.get(f"/api/users/{_user()}/recommendations?k=99999999999999999999&model=ease")
    assert huge.status_code == 200 and len(huge.json()["recommendations"]) == len(recs)


def test_a_huge_k_of_similar_movies_is_every_movie_at_once(client):
    n = load_processed().n_items
    movie = load_processed().items["movie_id"][0]
    start = time.perf_counter()
    answer = client.get(f"/api/movies/{movie}/similar?k=1000000000&model=ease")
    assert time.perf_counter() - start < 5.0  # padded to k: minutes and gigabytes
    assert answer.status_code == 200 and 0 < len(answer.json()["similar"]) < n


# ---------------------------------------------------------------- strict input


@pytest.mark.parametrize("loose", ["4_2", "٤٢", "４２", "+42", "4 2", "0x2a"])
def test_ids_are_ascii_decimal(client, loose):
    answer = client.get(f"/api/users/{loose}/recommendations")
    assert answer.status_code == 404 and "digits 0-9" in answer.json()["error"]
    similar = client.get(f"/api/movies/{loose}/similar")
    assert similar.status_code == 404 and "digits 0-9" in similar.json()["error"]


@pytest.mark.parametrize(
    ("rating", "says"),
    [
        ({"movie_id": True, "rating": 4}, "movie_id: Input should be a valid integer"),
        ({"movie_id": 1, "rating": True}, "rating: Input should be a valid number"),
        ({"movie_id": 1, "rating": 4.25}, "is not one of synthetic's ratings"),
        ({"movie_id": 1, "rating": 1.0001}, "is not one of synthetic's ratings"),
        ({"movie_id": 1.0, "rating": 4}, "movie_id: Input should be a valid integer"),
        ({"movie_id": 1, "rating": 4, "stars": 5}, "stars: Extra inputs are not permitted"),
    ],
)
def test_posted_values_are_strict(client, rating, says):
    answer = client.post("/api/recommendations", json={"ratings": [rating]})
    assert answer.status_code == 422 and says in answer.json()["error"], answer.text


def test_explain_k_is_capped_not_refused(client):
    data = load_processed()
    user = _user()
    rated = data.matrices["train"][int(data.users["user"][0])]
    movie = data.items["movie_id"][int(rated.indices[0])]
    answer = client.get(f"/api/users/{user}/explain?movie_id={movie}&k=99999999999999999999")
    assert answer.status_code == 200 and 0 < len(answer.json()["because"]) <= rated.nnz


def test_k_true_is_not_one(client):
    body = {"ratings": [{"movie_id": 1, "rating": 4}], "k": True}
    assert client.post("/api/recommendations", json=body).status_code == 422


# ---------------------------------------------------------------- the CLI


def _one_line_exit(argv, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as stop:
        cli_main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return stop.value.code, err[0]


def test_cli_huge_k_answers_the_catalogue(tiny_project, capsys):
    trained_project()
    start = time.perf_counter()
    cli_main(["recommend", "--user", _user(), "-k", "1000000000", "--model", "ease"])
    assert time.perf_counter() - start < 5
    out = capsys.readouterr().out.splitlines()
    assert 1 < len(out) - 2 <= load_processed().n_items
    cli_main(["recommend", "--user", _user(), "-k", "99999999999999999999", "--model", "ease"])
    assert capsys.readouterr().out.splitlines()[0].startswith("Top ")


@pytest.mark.parametrize("loose", ["4_2", "٤٢", "+42"])
def test_cli_ids_are_ascii_decimal(tiny_project, capsys, loose):
    trained_project()
    code, line = _one_line_exit(["recommend", "--user", loose, "--model", "ease"], capsys)
    assert code == 2 and "digits 0-9" in line


def test_a_seed_no_library_takes_is_refused_up_front(tiny_project, capsys):
    _set("params.yaml", "seed", 99999999999999999999)
    code, line = _one_line_exit(["check-params"], capsys)
    assert code == 1 and "`seed` must be an integer from 0 to 2147483647" in line


def test_docs_check_with_nothing_to_check_fails(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, line = _one_line_exit(["docs", "--check"], capsys)
    assert code == 1 and "no generated table" in line


@pytest.mark.parametrize(("rev", "says"), [("", "--rev is empty"), ("no-such-rev", "not a commit")])
def test_check_repro_needs_a_real_revision(rev, says, capsys):
    code, line = _one_line_exit(["check-repro", "--no-run", "--rev", rev], capsys)
    assert code == 1 and says in line


def test_bootstrap_beyond_reason_names_the_flag(tiny_project, capsys):
    code, line = _one_line_exit(["compare", "HEAD", "HEAD", "--bootstrap", "100000000000"], capsys)
    assert code == 1 and "--bootstrap must be between 100 and 100000" in line


def test_a_full_disk_names_the_file(tmp_path):
    import errno

    from movierec.store.files import atomic_path

    target = tmp_path / "metrics" / "x.json"
    with pytest.raises(OSError) as err, atomic_path(target):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert err.value.filename == str(target)


def test_served_models_are_what_the_board_is_about(tiny_project):
    served = Served.load(trained_project())
    assert set(served.models) == set(SERVED) and served.stale == {}


def test_a_reader_that_stops_early_ends_the_command_quietly(tiny_project):
    import subprocess
    import sys

    trained_project()
    command = [sys.executable, "-m", "movierec.cli", "recommend", "--user", _user()]
    command += ["-k", "100000", "--model", "ease"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # `| head -0`: gone before the first line is written
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "Broken pipe" not in err and "Traceback" not in err and err.strip() == ""


@pytest.mark.parametrize(
    ("files", "says"), [((), "no dvc.yaml"), (("dvc.yaml",), "dvc.lock not found")]
)
def test_check_lock_with_nothing_to_check_fails(tmp_path, monkeypatch, capsys, files, says):
    for name in files:
        (tmp_path / name).write_text("stages: {}\n")
    monkeypatch.chdir(tmp_path)
    code, line = _one_line_exit(["check-lock"], capsys)
    assert code == 1 and says in line
