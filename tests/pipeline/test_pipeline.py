"""End to end: `dvc repro` of download + preprocess in a fresh copy of the project."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

PROJECT_FILES = [
    "dvc.yaml",
    "params.yaml",
    "profiles.yaml",
    ".dvcignore",
    "stages",
    "src",
    ".dvc/config",
    ".dvc/.gitignore",
    ".dvc/plots",
    "data/custom/README.md",
    "data/custom/.gitignore",
]


def _project(tmp_path: Path) -> Path:
    proj = tmp_path / "proj"
    proj.mkdir()
    for name in PROJECT_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(
                src, proj / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
            )
        elif src.exists():
            (proj / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, proj / name)
    git = ["git", "-c", "user.name=movierec", "-c", "user.email=tests@movierec.invalid"]
    subprocess.run([*git, "init", "-q"], cwd=proj, check=True)
    subprocess.run([*git, "add", "-A"], cwd=proj, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "scratch copy"], cwd=proj, check=True)
    return proj


def _run(proj: Path, *args: str, mirror: Path | None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MOVIELENS_MIRROR", None)
    if mirror is not None:
        env["MOVIELENS_MIRROR"] = str(mirror)
    return subprocess.run(args, cwd=proj, env=env, capture_output=True, text=True, timeout=900)


def test_partial_repro_reproduces_committed_metrics_then_nothing_to_do(
    mirror: Path, tmp_path: Path
):
    """Download, preprocess and two models through DVC in a scratch copy: the same seed gives
    the committed metrics, and a second repro has nothing to do. (`.ci/run` reproduces the
    whole default pipeline with `movierec check-repro`.)"""
    proj = _project(tmp_path)
    targets = ["evaluate@mf_bias", "evaluate@item_knn"]  # cheap ones: CI reruns every stage
    first = _run(proj, "dvc", "repro", *targets, mirror=mirror)
    assert first.returncode == 0, first.stdout + first.stderr
    for name in ("ratings.parquet", "users.parquet", "items.parquet", "matrices.npz"):
        assert (proj / "data" / "processed" / name).is_file()
    stats = json.loads((proj / "metrics" / "data.json").read_text())
    assert (stats["ratings"]["total"], stats["users"], stats["items"]) == (100_000, 943, 1_682)
    for name in ("mf_bias", "item_knn"):
        fresh = json.loads((proj / "metrics" / "eval" / f"{name}.json").read_text())["test"]
        committed = json.loads((ROOT / "metrics" / "eval" / f"{name}.json").read_text())["test"]
        for key in ("rmse", "mae", "ndcg@10"):
            assert fresh[key] == pytest.approx(committed[key], abs=2e-3), (name, key)
        assert (proj / "data" / "predictions" / f"{name}.parquet").is_file()
    second = _run(proj, "dvc", "repro", *targets, mirror=mirror)
    assert second.returncode == 0
    assert "Running stage" not in second.stdout
    # Byte-code python leaves beside the sources changes nothing.
    cache = proj / "src" / "movierec" / "__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "cli.cpython-311.pyc").write_bytes(b"\x00" * 16)
    assert "Running stage" not in _run(proj, "dvc", "repro", *targets, mirror=mirror).stdout
    # Code no stage runs (the CLI) reruns only the fingerprinting, which finds nothing new.
    cli = proj / "src" / "movierec" / "cli.py"
    cli.write_text(cli.read_text() + "\n# an edit outside the pipeline\n")
    third = _run(proj, "dvc", "repro", *targets, mirror=mirror)
    assert third.returncode == 0, third.stdout + third.stderr
    ran = [line for line in third.stdout.splitlines() if line.startswith("Running stage")]
    assert ran == ["Running stage 'fingerprint':"], third.stdout
    assert "no step's code changed" in third.stdout


def test_any_subset_of_models_completes_dvc_repro(tmp_path: Path):
    """`train.models: [bias, mf_bias]` runs every stage, insight and ensemble included: the
    stages ask models what they provide instead of naming them."""
    proj = _project(tmp_path)
    params = yaml.safe_load((proj / "params.yaml").read_text())
    params["data"]["dataset"] = "synthetic"
    params["data"]["synthetic"] |= {"n_users": 200, "n_items": 300, "n_ratings": 12000}
    params["train"]["models"] = ["bias", "mf_bias"]
    params["embed"]["epochs"] = 3
    params["insight"]["tsne_movies"] = 100
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = _run(proj, "dvc", "repro", mirror=None)
    assert result.returncode == 0, result.stdout + result.stderr
    board = json.loads((proj / "metrics" / "leaderboard.json").read_text())
    assert {r["model"] for r in board["rating"]} == {"bias", "mf_bias", "ensemble"}
    assert {"word2vec", "mf_bias"} <= {r["model"] for r in board["topn"]}
    maps = sorted(p.name for p in (proj / "metrics" / "insight" / "maps").iterdir())
    assert maps == ["mf_bias.csv", "word2vec.csv"]
    header = (proj / "metrics" / "insight" / "maps" / "mf_bias.csv").read_text().splitlines()[0]
    assert {"x", "y", "genre", "title", "model"} <= set(header.split(","))  # the template's fields
    units = (proj / "metrics" / "insight" / "units" / "index.md").read_text()
    assert "No model in train.models has hidden units" in units
    status = _run(proj, "dvc", "status", mirror=None)
    assert "changed" not in status.stdout, status.stdout


def test_a_fixed_custom_file_is_picked_up_by_dvc_repro(tmp_path: Path):
    """The user's custom file lives outside the project and DVC tracks it: after fixing it,
    a plain `dvc repro` reruns from the download; after changing it, the same; with no
    change, nothing runs."""
    proj = _project(tmp_path)
    mine = tmp_path / "elsewhere" / "ratings.csv"
    mine.parent.mkdir()
    rng = np.random.default_rng(0)
    rows = [
        f"{u},{i},{rng.integers(1, 6)}"
        for u in range(1, 61)
        for i in rng.choice(np.arange(1, 41), 20, replace=False)
    ]
    header = "user_id,item_id,rating\n"
    mine.write_text(header + "\n".join(rows[:-1]) + "\nx7,3,4\n")  # one bad id, last line
    params = yaml.safe_load((proj / "params.yaml").read_text())
    params["data"]["dataset"] = "custom"
    params["data"]["custom"] = {"ratings": str(mine)}
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    broken = _run(proj, "dvc", "repro", "preprocess", mirror=None)
    assert broken.returncode != 0
    assert f"{mine.resolve()}: line 1201: user_id 'x7'" in broken.stderr, broken.stderr

    mine.write_text(header + "\n".join(rows) + "\n")  # fixed in place
    fixed = _run(proj, "dvc", "repro", "preprocess", mirror=None)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    stats = json.loads((proj / "metrics" / "data.json").read_text())
    assert stats["ratings"]["total"] == 1200

    with mine.open("a") as handle:  # grown: another user's 20 ratings
        handle.write("".join(f"61,{i},3\n" for i in range(1, 21)))
    assert "custom@ratings" in _run(proj, "dvc", "status", mirror=None).stdout
    grown = _run(proj, "dvc", "repro", "preprocess", mirror=None)
    assert grown.returncode == 0, grown.stdout + grown.stderr
    stats = json.loads((proj / "metrics" / "data.json").read_text())
    assert stats["ratings"]["total"] == 1220

    again = _run(proj, "dvc", "repro", "preprocess", mirror=None)
    assert again.returncode == 0 and "Running stage" not in again.stdout, again.stdout


def test_tampered_params_fail_before_any_work(tmp_path: Path):
    proj = _project(tmp_path)
    params = yaml.safe_load((proj / "params.yaml").read_text())
    for edit, key in (
        ({"lr": "fast"}, "models.mf_bias.lr"),
        ({"lr": -1.0}, "models.mf_bias.lr"),
        ({"factorz": 3}, "models.mf_bias.factorz"),
    ):
        bad = json.loads(json.dumps(params))
        bad["models"]["mf_bias"] |= edit
        (proj / "params.yaml").write_text(yaml.safe_dump(bad))
        result = _run(proj, "python", "stages/train.py", "mf_bias", mirror=None)
        assert result.returncode == 1, result.stderr
        assert result.stderr.count("\n") == 1 and f"`{key}`" in result.stderr, result.stderr
        assert not (proj / "data" / "models").exists()


def test_missing_upstream_output_is_dvc_message(tmp_path: Path):
    proj = _project(tmp_path)
    result = _run(proj, "python", "stages/train.py", "mf_bias", mirror=None)
    assert result.returncode == 1
    assert "run `dvc repro preprocess` first" in result.stderr and "Traceback" not in result.stderr


def test_bad_param_fails_with_one_line(tmp_path: Path):
    proj = _project(tmp_path)
    params = yaml.safe_load((proj / "params.yaml").read_text())
    params["data"]["split"]["ratios"] = [0.9, 0.2, -0.1]
    (proj / "params.yaml").write_text(yaml.safe_dump(params))
    result = _run(proj, "python", "stages/download.py", mirror=None)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: params.yaml: `data.split.ratios`")
    assert "Traceback" not in result.stderr
    assert not (proj / "data" / "raw").exists()


def test_offline_without_mirror_is_one_clear_message(tmp_path: Path):
    proj = _project(tmp_path)
    env_proxy = {"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}
    os.environ.update(env_proxy)
    try:
        result = _run(proj, "python", "stages/download.py", mirror=None)
    finally:
        for key in env_proxy:
            os.environ.pop(key, None)
    assert result.returncode == 1
    assert "MOVIELENS_MIRROR" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (proj / "data" / "raw" / "ml-100k").exists()
