"""Bad input gets one readable line that says what to do, and never silently wrong output:
YAML read as DVC reads it, ids normalised, damaged artifacts named with their rebuild
command, consoles that cannot show a title, and the wording of each refusal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from movierec.config.params import load_params, load_raw
from movierec.config.yaml_reader import parse_yaml
from movierec.data.parse import parse_release
from movierec.errors import ConfigError, DataError, LookupFailed
from movierec.store.files import reading
from movierec.store.paths import rebuild_command

ROOT = Path(__file__).resolve().parents[2]


# -- YAML: one reader, as DVC reads it ---------------------------------------------------


def test_a_key_written_twice_is_refused_by_every_reader(tmp_path: Path):
    params = tmp_path / "params.yaml"
    params.write_text("seed: 42\ndata:\n  dataset: ml-100k\nseed: 7\n")
    with pytest.raises(ConfigError, match=r"line 4: `seed` is written twice .*first on line 1"):
        load_raw(params)
    nested = tmp_path / "nested.yaml"
    nested.write_text("models:\n  mf:\n    lr: 0.01\n    lr: 0.02\n")
    from movierec.cli import _read_yaml

    with pytest.raises(ConfigError, match=r"nested.yaml: line 4: `lr` is written twice"):
        _read_yaml(str(nested))


def test_yaml_12_numbers_are_numbers(tmp_path: Path):
    """``1e-3`` is a float to DVC; it was the string "1e-3" to PyYAML's YAML 1.1 reader."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["models"]["mf_bias"]["lr"] = "__LR__"
    text = yaml.safe_dump(raw).replace("__LR__", "1e-3")
    (tmp_path / "params.yaml").write_text(text)
    (tmp_path / "profiles.yaml").write_text((ROOT / "profiles.yaml").read_text())
    params = load_params(tmp_path / "params.yaml")
    from movierec.models.registry import model_params, raw_params

    assert model_params("mf_bias", raw_params("mf_bias", params)).lr == pytest.approx(1e-3)
    assert parse_yaml("a: 1E5\nb: .5\nc: -2.5e-2\nd: 7\ne: yes\nf: true\n") == {
        "a": 1e5,
        "b": 0.5,
        "c": -0.025,
        "d": 7,
        "e": "yes",  # YAML 1.2 (and DVC): text, not a boolean
        "f": True,
    }


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_any_float_written_in_e_notation_reads_back(x: float):
    assert parse_yaml(f"v: {x:e}")["v"] == pytest.approx(float(f"{x:e}"))
    assert parse_yaml(f"v: {x!r}")["v"] == x


def test_shipped_yaml_files_read_the_same_as_before():
    for name in ("params.yaml", "profiles.yaml", "dvc.yaml"):
        text = (ROOT / name).read_text()
        assert parse_yaml(text) == yaml.safe_load(text), name


# -- ids and numbers in a user's files ---------------------------------------------------


def test_text_ids_with_stray_spaces_are_one_user_and_a_warning_says_so(tmp_path: Path, capsys):
    rows = ["u196,m1,4", "u196 ,m2,3", " u196,m3,5", "u2,m1,2", "u2,m2,4"]
    (tmp_path / "ratings.csv").write_text("user_id,item_id,rating\n" + "\n".join(rows) + "\n")
    raw = parse_release(tmp_path, "custom")
    assert sorted(set(raw.ratings["user_id"].to_list())) == ["u196", "u2"]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("warning: ")
    assert "1 user_id value(s) were written with and without surrounding spaces" in err


def test_mostly_text_ids_with_some_numbers_are_text(tmp_path: Path):
    rows = [f"user{u},m{u % 3},4" for u in range(20)] + ["42,m1,3", "7,m2,5"]
    (tmp_path / "ratings.csv").write_text("user_id,item_id,rating\n" + "\n".join(rows) + "\n")
    raw = parse_release(tmp_path, "custom")
    assert {"42", "7", "user3"} <= set(raw.ratings["user_id"].to_list())


def test_a_whole_timestamp_written_as_a_float_is_read(tmp_path: Path):
    (tmp_path / "ratings.csv").write_text(
        "user_id,item_id,rating,timestamp\n1,10,4,881250949.0\n2,10,3,881250950\n"
    )
    raw = parse_release(tmp_path, "custom")
    assert raw.ratings["timestamp"].to_list() == [881250949, 881250950]
    (tmp_path / "ratings.csv").write_text("user_id,item_id,rating,timestamp\n1,10,4,8812.5\n")
    with pytest.raises(DataError, match=r"line 2: timestamp '8812.5' is not a whole number"):
        parse_release(tmp_path, "custom")


def test_a_folder_named_as_the_ratings_file_is_called_a_folder(tmp_path: Path):
    from movierec.config.params import CustomData
    from movierec.data.download import fingerprint_custom

    (tmp_path / "exports").mkdir()
    files = CustomData(ratings=str(tmp_path / "exports"))
    with pytest.raises(
        DataError, match=r"names .*exports, which is a folder; name the ratings file"
    ):
        fingerprint_custom(files, "ratings", tmp_path / "out")


def test_a_storage_url_under_a_file_says_the_file_is_in_the_way(tmp_path: Path):
    pytest.importorskip("optuna")
    from movierec.experiments.tune import open_storage

    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"notes.txt is a file, so the database cannot go"):
        open_storage(f"sqlite:///{tmp_path}/notes.txt/x.db")


def test_a_movie_without_a_vector_is_told_why(tiny_processed):
    from movierec.serve.similar import similar

    n = tiny_processed.n_items
    vectors = np.eye(n, dtype=np.float32)
    has = np.ones(n, dtype=bool)
    counts = np.asarray(tiny_processed.matrices["train"].getnnz(axis=0))
    rated = int(np.flatnonzero(counts > 0)[0])
    has[rated] = False
    with pytest.raises(LookupFailed, match=r"training rating\(s\) are too few .*embed.min_count"):
        similar(tiny_processed, vectors, has, rated, 5)


# -- damaged artifacts -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "command"),
    [
        ("data/models/ease/model.npz", "dvc repro train@ease"),
        ("data/models/word2vec/model.npz", "dvc repro embed"),
        ("data/scores/ease/rows.npy", "dvc repro evaluate@ease"),
        ("data/per_user/ensemble_topn.parquet", "dvc repro ensemble_topn"),
        ("data/processed/matrices.npz", "dvc repro preprocess"),
        ("data/processed/meta.json", "dvc repro preprocess"),
        ("metrics/details/mf.json", "dvc repro evaluate@mf"),
        ("metrics/leaderboard.json", "dvc repro report"),
        ("/home/me/proj/data/ensemble/model.npz", "dvc repro ensemble"),
    ],
)
def test_every_artifact_knows_the_command_that_writes_it(path: str, command: str):
    assert rebuild_command(path) == command


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_truncated_processed_files_are_named_with_the_fix(tiny_processed, tmp_path: Path):
    import shutil

    from movierec.data.processed import load_processed

    for name in ("matrices.npz", "meta.json", "ratings.parquet", "items.parquet"):
        folder = tmp_path / name / "data" / "processed"
        shutil.copytree(tiny_processed.folder, folder)
        _truncate(folder / name)
        with pytest.raises(DataError) as err:
            data = load_processed(folder)
            _ = data.matrices, data.items
        message = str(err.value)
        assert message.startswith(str(folder / name)), message
        assert "damaged or unreadable" in message and "`dvc repro preprocess`" in message
        assert "\n" not in message


def test_a_truncated_model_or_score_file_is_named(tmp_path: Path):
    model = tmp_path / "data" / "models" / "ease" / "model.npz"
    model.parent.mkdir(parents=True)
    np.savez(model, b=np.arange(10_000.0))
    _truncate(model)
    with (
        pytest.raises(
            DataError, match=r"model.npz: damaged .*`dvc repro train@ease`.*dvc checkout"
        ),
        reading(model),
        np.load(model) as f,
    ):
        dict(f)
    rows = tmp_path / "data" / "scores" / "ease" / "rows.npy"
    rows.parent.mkdir(parents=True)
    np.save(rows, np.zeros((50, 50), dtype=np.float32))
    _truncate(rows)
    damaged = r"rows.npy: damaged .*`dvc repro evaluate@ease`"
    with pytest.raises(DataError, match=damaged), reading(rows):
        np.load(rows, mmap_mode="r")


def test_conflict_markers_and_broken_json_are_named(tmp_path: Path):
    from movierec.serve.recommend import default_model
    from movierec.store.results import read_details

    board = tmp_path / "metrics" / "leaderboard.json"
    board.parent.mkdir(parents=True)
    board.write_text('{\n<<<<<<< HEAD\n  "k": 10\n=======\n  "k": 5\n>>>>>>> other\n}\n')
    with pytest.raises(DataError, match=r"leaderboard.json: holds git merge-conflict markers"):
        default_model("topn", board)
    details = tmp_path / "metrics" / "details"
    details.mkdir()
    (details / "mf.json").write_text('{"val": {"rmse": 0.9')
    with pytest.raises(
        DataError, match=r"mf.json: damaged or unreadable .*`dvc repro evaluate@mf`"
    ):
        read_details(details)


# -- consoles that cannot show a title ---------------------------------------------------


@pytest.mark.parametrize("encoding", ["ascii", "cp1252", "latin-1"])
def test_a_console_without_the_characters_gets_readable_text(encoding: str):
    code = (
        "from movierec.pipeline.runner import run_cli\n"
        "run_cli(lambda: print('Les Misérables — “Cité” 東京'))\n"
    )
    env = {**os.environ, "PYTHONIOENCODING": encoding}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout.decode(encoding)
    assert text.startswith("Les Mis") and "Cit" in text and "??" in text, text
    if encoding == "ascii":
        assert text.strip() == 'Les Miserables - "Cite" ??'
