"""Fault injection: bad input, degenerate data, OS errors, signals and kill -9 mid-write.

Each case asserts the exit code, a one-line message naming the file / key at
fault, and that no partial output or stale temporary is left where readers look.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from movierec.config.params import ConfigError, parse_params
from movierec.data.parse import parse_release
from movierec.errors import DataError, MovierecError
from movierec.pipeline.runner import run_cli
from movierec.store.files import write_json
from movierec.store.results import read_details

ROOT = Path(__file__).resolve().parents[2]
posix = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
_TEXT = {"capture_output": True, "text": True, "check": True}


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def _run(code: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


# ------------------------------------------------------------------ run_cli: every failure is a line


@pytest.mark.parametrize(
    "exc, code, wanted",
    [
        (PermissionError(errno.EACCES, "Permission denied", "data/models/x"), 1, "data/models/x"),
        (OSError(errno.EROFS, "Read-only file system", "metrics/eval"), 1, "read-only"),
        (OSError(errno.ENOSPC, "No space left on device", "data/x.npz"), 1, "disk is full"),
        (ValueError("something unforeseen"), 1, "something unforeseen"),
        (ConfigError("params.yaml: `train.models` ..."), 1, "train.models"),
    ],
)
def test_run_cli_prints_one_line_for_any_failure(capsys, exc, code, wanted):
    def boom():
        raise exc

    with pytest.raises(SystemExit) as stop:
        run_cli(boom)
    assert stop.value.code == code
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("error:") and wanted in line, line


def test_unexpected_errors_keep_their_traceback_on_request(tmp_path):
    code = "from movierec.pipeline.runner import run_cli\nrun_cli(lambda: 1 / 0)"
    quiet = _run(code, tmp_path)
    assert quiet.returncode == 1 and "ZeroDivisionError" in _one_line(quiet.stderr)
    loud = _run(code, tmp_path, {"MOVIEREC_DEBUG": "1"})
    assert "Traceback" in loud.stderr


@posix
def test_sigterm_is_like_ctrl_c_one_line_and_exit_143(tmp_path):
    code = (
        "import os, signal, time\n"
        "from movierec.store.files import atomic_dir\n"
        "from movierec.pipeline.runner import run_cli\n"
        "def work():\n"
        "    with atomic_dir('out') as tmp:\n"
        "        (tmp / 'half').write_text('x')\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "        time.sleep(10)\n"
        "run_cli(work)\n"
    )
    proc = _run(code, tmp_path)
    assert proc.returncode == 143
    assert _one_line(proc.stderr).startswith("terminated")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # temp folder cleaned up


# ------------------------------------------------------------------ atomic writes under kill -9


@posix
def test_kill_9_between_write_and_rename_leaves_nothing_readers_see(tmp_path):
    target = tmp_path / "metrics" / "details" / "bias.json"
    write_json(target, {"model": "bias", "test": {"rmse": 1.0}})
    code = (
        "import os\n"
        "import movierec.store.files as io\n"
        "io.os.replace = lambda a, b: os.kill(os.getpid(), 9)\n"
        f"io.write_json({str(target)!r}, {{'model': 'bias', 'test': {{'rmse': 2.0}}}})\n"
    )
    proc = _run(code, tmp_path)
    assert proc.returncode == -9
    leftovers = [p.name for p in target.parent.iterdir() if p.name != "bias.json"]
    assert leftovers and not any(n.endswith(".json") for n in leftovers), leftovers
    assert [r["model"] for r in read_details(target.parent)] == ["bias"]  # no JSONDecodeError
    assert json.loads(target.read_text())["test"]["rmse"] == 1.0  # the old version, intact
    write_json(target, {"model": "bias", "test": {"rmse": 3.0}})  # the next writer cleans up
    assert sorted(p.name for p in target.parent.iterdir()) == ["bias.json"]


def test_a_concurrent_writers_temporary_is_left_alone(tmp_path):
    """Two processes writing one file (tune workers finishing a study): the second must not
    delete the first one's temporary as if its writer had been killed."""
    target = tmp_path / "tuned" / "bias.yaml"
    target.parent.mkdir()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], **_TEXT)
    try:
        writing = target.parent / f".bias.yaml.{live.pid}-abc123.tmp"
        killed = target.parent / f".bias.yaml.{int(dead.stdout)}-def456.tmp"
        for tmp in (writing, killed):
            tmp.write_text("half")
        write_json(target, {"best": 1})
        assert writing.exists() and not killed.exists()
    finally:
        live.kill()
        live.wait()


# ------------------------------------------------------------------ params and degenerate data


@pytest.mark.parametrize("ratios", [[0.9, 0.1, 0.0], [0.9, 0.0, 0.1]])
def test_a_split_without_val_or_test_is_refused(ratios):
    with pytest.raises(ConfigError, match=r"data.split.ratios"):
        parse_params({"data": {"split": {"ratios": ratios}}})


def test_threshold_above_every_rating_is_a_clear_refusal(tiny_project):
    from movierec.config.params import load_params
    from movierec.pipeline.evaluate_step import evaluate_model
    from movierec.pipeline.train_step import train_model

    params = load_params()
    train_model("bias", params)
    raw = (tiny_project / "params.yaml").read_text()
    (tiny_project / "params.yaml").write_text(raw.replace("threshold: 4.0", "threshold: 10.0"))
    with pytest.raises(DataError, match=r"evaluate.threshold"):
        evaluate_model("bias", load_params())
    assert not (tiny_project / "metrics" / "eval" / "bias.json").exists()


def test_training_that_never_gets_a_finite_val_metric_stops():
    import torch

    from movierec.train.trainer import TrainConfig, Trainer, Validation

    class Flat(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def loss(self, batch):
            return (self.w - 1) ** 2

    trainer = Trainer(
        TrainConfig(epochs=3, batch_size=4, patience=3),
        device=torch.device("cpu"),
        seed=0,
        progress=False,
    )
    nan = Validation("val_ndcg@10", True, lambda m: {"val_ndcg@10": float("nan")})
    with pytest.raises(MovierecError, match="no epoch gave a finite val_ndcg@10"):
        trainer.fit(Flat(), {"x": torch.zeros(8)}, nan)


# ------------------------------------------------------------------ custom files


def _ratings(folder: Path) -> None:
    pl.DataFrame(
        {"user_id": [1, 1, 2, 2], "item_id": [10, 20, 10, 30], "rating": [4, 5, 3, 2]}
    ).write_csv(folder / "ratings.csv")


def test_duplicated_item_id_names_the_file_and_lines(tmp_path):
    _ratings(tmp_path)
    (tmp_path / "items.csv").write_text("item_id,title\n10,A\n20,B\n10,C\n30,D\n")
    with pytest.raises(DataError) as err:
        parse_release(tmp_path, "custom")
    message = str(err.value)
    assert "items.csv" in message and "10" in message and "lines 2 and 4" in message


def test_non_numeric_item_id_in_items_names_the_line(tmp_path):
    _ratings(tmp_path)
    (tmp_path / "items.csv").write_text("item_id,title\n10,A\n20,B\nabc,C\n")
    with pytest.raises(DataError, match=r"items.csv: line 4: item_id 'abc'"):
        parse_release(tmp_path, "custom")


def test_float_ids_in_a_parquet_file(tmp_path):
    pl.DataFrame(
        {"user_id": [1.0, 1.0, 2.5], "item_id": [10, 20, 10], "rating": [4.0, 5.0, 3.0]}
    ).write_parquet(tmp_path / "ratings.parquet")
    with pytest.raises(DataError, match=r"ratings.parquet: user_id must be whole numbers"):
        parse_release(tmp_path, "custom")


def test_whole_float_ids_are_accepted(tmp_path):
    pl.DataFrame(
        {"user_id": [1.0, 1.0, 2.0], "item_id": [10, 20, 10], "rating": [4.0, 5.0, 3.0]}
    ).write_parquet(tmp_path / "ratings.parquet")
    raw = parse_release(tmp_path, "custom")
    assert raw.ratings["user_id"].dtype == pl.Int64


# ------------------------------------------------------------------ the CLI


@pytest.mark.parametrize(
    "argv, wanted",
    [
        (["similar", ""], "title is empty"),
        (["similar", "Toy", "-k", "-3"], "-k must be at least 1"),
        (["recommend", "--user", "1", "-k", "0"], "-k must be at least 1"),
        (["bench", "--overrides", "missing.yaml"], "missing.yaml: no such file"),
        (["tune", "--model", "ease", "--trials", "0"], "--trials must be at least 1"),
    ],
)
def test_cli_arguments_get_one_line(tmp_path, argv, wanted):
    proc = subprocess.run(
        [sys.executable, "-m", "movierec.cli", *argv],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode in (1, 2)
    assert wanted in _one_line(proc.stderr)


def test_bad_yaml_in_overrides_names_the_line(tmp_path):
    (tmp_path / "o.yaml").write_text("models:\n  mf: [1,\n")
    proc = subprocess.run(
        [sys.executable, "-m", "movierec.cli", "bench", "--overrides", "o.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1 and "o.yaml: line" in _one_line(proc.stderr)


def test_stale_model_of_another_data_set_is_refused(tiny_project):
    from movierec.config.params import load_params
    from movierec.data.processed import load_processed
    from movierec.models.trained import load_model
    from movierec.pipeline.train_step import train_model

    params = load_params()
    train_model("ease", params)
    meta = tiny_project / "data" / "processed" / "meta.json"
    info = json.loads(meta.read_text())
    info["n_items"] += 5
    meta.write_text(json.dumps(info))
    with pytest.raises(DataError, match=r"data/models/ease.*other data.*dvc repro"):
        load_model("ease", params, load_processed())


def test_random_corruption_of_a_raw_file_is_rejected_or_harmless(tiny, tmp_path):
    """Any changed byte in any raw file is refused (hashes against MANIFEST.json), so a
    parse either fails with one line or returns exactly the original data."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from movierec.data.manifest import write_manifest
    from movierec.data.synthetic import write_native

    folder = tmp_path / "ml-100k"
    write_native(tiny, "ml-100k", folder)
    names = sorted(p.name for p in folder.iterdir())
    write_manifest(folder, "copy", {n: "test" for n in names})
    originals = {n: (folder / n).read_bytes() for n in names}
    expected = parse_release(folder, "ml-100k").ratings

    @settings(max_examples=60, deadline=None)
    @given(st.sampled_from(names), st.floats(0, 1, exclude_max=True), st.integers(0, 255))
    def check(name: str, where: float, byte: int) -> None:
        data = bytearray(originals[name])
        data[int(where * len(data))] = byte
        (folder / name).write_bytes(bytes(data))
        try:
            got = parse_release(folder, "ml-100k").ratings
        except DataError as err:
            assert "\n" not in str(err)
            assert bytes(data) != originals[name]
            assert name in str(err) and "dvc repro -f download" in str(err)
            return
        finally:
            (folder / name).write_bytes(originals[name])
        assert got.equals(expected)

    check()


def test_a_fake_release_folder_in_a_mirror_is_refused(tiny, tmp_path):
    """An extracted ml-20m folder with a handful of ratings is not the release."""
    from movierec.data.download import acquire
    from movierec.data.preprocess import preprocess
    from movierec.data.synthetic import write_native

    mirror = tmp_path / "mirror"
    write_native(tiny, "ml-20m", mirror / "ml-20m")
    params = parse_params({"data": {"dataset": "ml-20m", "mirror": str(mirror)}})
    acquire(params.data, 1, tmp_path / "raw", tmp_path / "cache")
    manifest = json.loads((tmp_path / "raw" / "ml-20m" / "MANIFEST.json").read_text())
    assert "rating count" in manifest["verified"]
    with pytest.raises(DataError, match=r"but the official ml-20m has 20,000,263"):
        preprocess(tmp_path / "raw" / "ml-20m", tmp_path / "processed", params.data, 1)
    assert not (tmp_path / "processed").exists()


def test_custom_file_errors_name_the_users_file(tmp_path):
    from movierec.data.download import acquire
    from movierec.data.preprocess import preprocess

    mine = tmp_path / "my_ratings.csv"
    mine.write_text("user_id,item_id,rating\n1,10,4\n1,20,oops\n")
    params = parse_params({"data": {"dataset": "custom", "custom": {"ratings": str(mine)}}})
    acquire(params.data, 1, tmp_path / "raw", tmp_path / "cache")
    with pytest.raises(DataError) as err:
        preprocess(tmp_path / "raw" / "custom", tmp_path / "processed", params.data, 1)
    message = str(err.value)
    assert message.startswith(str(mine.resolve())) and "line 3" in message
    assert message.endswith("after fixing it, run `dvc repro` again")


def test_one_non_numeric_user_id_among_numbers_names_its_line(tmp_path):
    rows = "\n".join(f"{u},{10 + u},4" for u in range(1, 30))
    (tmp_path / "ratings.csv").write_text(f"user_id,item_id,rating\n{rows}\nx7,10,3\n")
    with pytest.raises(DataError, match=r"ratings.csv: line 31: user_id 'x7' is not a number"):
        parse_release(tmp_path, "custom")


def test_text_ids_are_fine_when_every_id_is_text(tmp_path):
    (tmp_path / "ratings.csv").write_text("user_id,item_id,rating\nann,m1,4\nbob,m2,3\n")
    raw = parse_release(tmp_path, "custom")
    assert raw.ratings["user_id"].to_list() == ["ann", "bob"]


def test_another_cut_off_runs_through_evaluate_and_report(tiny_project, capsys):
    import yaml

    from movierec.cli import main as cli_main

    cfg = yaml.safe_load((tiny_project / "params.yaml").read_text())
    cfg["evaluate"]["k"] = [5]
    (tiny_project / "params.yaml").write_text(yaml.safe_dump(cfg))
    for argv in (["train", "bias"], ["evaluate", "bias"], ["train", "ease"], ["evaluate", "ease"]):
        cli_main(argv)
    cli_main(["report"])
    out = capsys.readouterr().out
    assert "NDCG@5" in out and "ease" in out
    saved = json.loads((tiny_project / "metrics" / "eval" / "ease.json").read_text())
    assert "ndcg@5" in saved["test"]


@posix
@pytest.mark.parametrize("step", [1, 2])
def test_kill_9_at_each_rename_of_a_folder_swap_recovers(tmp_path, step):
    """atomic_dir swaps a folder in two renames (old aside, new in). Killed after either,
    the next writer restores or keeps a complete folder and leaves no temporaries."""
    target = tmp_path / "models" / "mf"
    target.mkdir(parents=True)
    (target / "model.npz").write_text("old")
    code = (
        "import os\n"
        "import movierec.store.files as io\n"
        "real, calls = io.os.replace, []\n"
        "def replace(a, b):\n"
        "    calls.append(1)\n"
        f"    if len(calls) == {step}:\n"
        "        real(a, b)\n"
        "        os.kill(os.getpid(), 9)\n"
        "    real(a, b)\n"
        "io.os.replace = replace\n"
        f"with io.atomic_dir({str(target)!r}) as tmp:\n"
        "    (tmp / 'model.npz').write_text('new')\n"
    )
    proc = _run(code, tmp_path)
    assert proc.returncode == -9
    from movierec.store.files import atomic_dir

    with atomic_dir(target) as tmp:  # the next writer recovers first, then writes
        assert (target / "model.npz").read_text() in ("old", "new")
        (tmp / "model.npz").write_text("next")
    assert (target / "model.npz").read_text() == "next"
    assert sorted(p.name for p in target.parent.iterdir()) == ["mf"]
