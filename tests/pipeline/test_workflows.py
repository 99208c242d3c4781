"""The pipeline's structure carries its guarantees: exact stage deps, any subset of models
completes, training never sees test labels, models are asked (not named)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
import yaml

from movierec.config.params import load_params
from movierec.data.processed import load_processed
from movierec.models.registry import MODELS, providing, trainable
from movierec.pipeline.fingerprints import (
    PER_FAMILY,
    fingerprint,
    fingerprint_files,
    step_files,
    steps,
    write_fingerprints,
)
from movierec.pipeline.train_step import train_model
from movierec.store.paths import MODELS_DIR

ROOT = Path(__file__).resolve().parents[2]


def _code_dep(name: str) -> str:
    return f"data/code/{name}/${{item}}.txt" if name in PER_FAMILY else f"data/code/{name}.txt"


def test_each_stage_depends_on_its_steps_code_fingerprint():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    code = stages.pop("fingerprint")
    assert code["deps"] == ["src/movierec", "stages"]
    outs = {next(iter(o)) if isinstance(o, dict) else o for o in code["outs"]}
    assert outs == {_code_dep(name).removesuffix("/${item}.txt") for name in stages}
    assert sorted(stages) == steps(ROOT)
    for name, entry in stages.items():
        entry = entry.get("do", entry)
        script = (ROOT / "stages" / f"{name}.py").read_text()
        assert f'run_step("{name}"' in script, f"stages/{name}.py must call its step"
        assert _code_dep(name) in entry["deps"], name
        assert not [d for d in entry["deps"] if d.startswith(("src/", "stages/"))], name


def test_no_stage_script_shadows_a_standard_module():
    """``python stages/<name>.py`` puts stages/ first on the import path: a script named
    like a standard module (``profile``, ``code``) would replace it wherever it is imported
    (``pdb`` imports ``code``)."""
    import sys

    clashes = [p.name for p in (ROOT / "stages").glob("*.py") if p.stem in sys.stdlib_module_names]
    assert not clashes


def _listed(text: str) -> list[str]:
    return [line.split("  ", 1)[1] for line in text.splitlines()]


def test_fingerprint_lists_exactly_the_code_a_step_runs():
    src = ROOT / "src"
    for name in steps(ROOT):
        family = "ease" if name in PER_FAMILY else None
        listed = _listed(fingerprint(ROOT, name, family))
        files = {str(p.relative_to(ROOT)) for p in step_files(src, name, family)}
        assert listed[0] == f"stages/{name}.py"
        table = "src/movierec/models/families.py"
        assert {t.split(" (rows")[0] for t in listed[1:]} == files, name
    assert "src/movierec/pipeline/train_step.py" in fingerprint(ROOT, "train", "ease")
    assert "src/movierec/pipeline/train_step.py" not in fingerprint(ROOT, "evaluate", "ease")
    assert "src/movierec/cli.py" not in fingerprint(ROOT, "train", "ease")
    assert f"{table} (rows ease)" in _listed(fingerprint(ROOT, "train", "ease"))


def test_a_stage_holds_only_the_families_it_runs():
    """Editing one family reruns its own stages and what reads every family, no other."""
    families = {f"src/movierec/models/{m}.py" for m in ("recvae", "ease", "classic", "embedding")}
    for step in ("download", "preprocess", "profiles", "custom", "significance", "report"):
        assert not families & set(_listed(fingerprint(ROOT, step))), step
    ease = set(_listed(fingerprint(ROOT, "train", "ease")))
    assert "src/movierec/models/ease.py" in ease and "src/movierec/models/recvae.py" not in ease
    assert not [f for f in ease if "torch_base" in f], "EASE loads no torch family code"
    assert "src/movierec/models/recvae.py" in _listed(fingerprint(ROOT, "evaluate", "recvae"))
    assert "src/movierec/models/word2vec.py" in _listed(fingerprint(ROOT, "neighbours"))
    assert "src/movierec/models/recvae.py" not in _listed(fingerprint(ROOT, "neighbours"))


def _copy_code(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(ROOT / "src" / "movierec", root / "src" / "movierec")
    shutil.copytree(ROOT / "stages", root / "stages")
    return root


def test_fingerprints_change_only_for_the_steps_whose_code_changed(tmp_path):
    root = _copy_code(tmp_path)
    out = root / "data" / "code"
    first = write_fingerprints(root, out)
    assert len(first) == len(fingerprint_files(ROOT)) and all("source files" in x for x in first)
    before = {p.relative_to(out).as_posix(): p.read_text() for p in out.rglob("*.txt")}
    assert write_fingerprints(root, out) == ["no step's code changed"]
    stage_py = root / "src" / "movierec" / "pipeline" / "train_step.py"
    stage_py.write_text(stage_py.read_text() + "\n# edited\n")
    lines = write_fingerprints(root, out)
    assert lines and all(x.startswith("train/") and x.endswith("train_step.py") for x in lines)
    recvae = root / "src" / "movierec" / "models" / "recvae.py"
    recvae.write_text(recvae.read_text() + "\n# edited\n")
    changed = {x.split(":")[0] for x in write_fingerprints(root, out)}
    assert changed == {
        "train/recvae.txt", "evaluate/recvae.txt", "ensemble.txt", "ensemble_topn.txt", "insight.txt"
    }
    after = {p.relative_to(out).as_posix(): p.read_text() for p in out.rglob("*.txt")}
    assert {n for n in before if before[n] != after[n]} == changed | {
        f"train/{m}.txt" for m in trainable()
    }


def test_registering_a_family_reruns_no_other_familys_stages(tmp_path):
    """A new row in the family table and a new module: only the new family's fingerprints
    appear, and the steps that read every family change; download, preprocess and every
    other family's train and evaluate stay as they were."""
    root = _copy_code(tmp_path)
    out = root / "data" / "code"
    write_fingerprints(root, out)
    before = {p.relative_to(out).as_posix(): p.read_text() for p in out.rglob("*.txt")}
    models = root / "src" / "movierec" / "models"
    shutil.copy(models / "pop.py", models / "pop_copy.py")
    table = models / "families.py"
    text = table.read_text()
    row = '    "pop": Family("movierec.models.pop", "Pop", "PopParams"),\n'
    assert row in text
    table.write_text(text.replace(row, row + row.replace('"pop"', '"pop_copy"', 1).replace(
        "models.pop\"", "models.pop_copy\""
    )))
    changed = {x.split(":")[0] for x in write_fingerprints(root, out)}
    after = {p.relative_to(out).as_posix(): p.read_text() for p in out.rglob("*.txt")}
    assert {"train/pop_copy.txt", "evaluate/pop_copy.txt"} <= changed
    rerun = {n for n in before if before[n] != after[n]}
    assert rerun <= {"ensemble.txt", "ensemble_topn.txt", "insight.txt", "report.txt",
                     "significance.txt"}, rerun
    assert "src/movierec/models/pop_copy.py" in after["train/pop_copy.txt"]


def test_every_step_has_a_stage_and_a_cli_command():
    from movierec.cli import build_parser
    from movierec.pipeline import steps

    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    commands = build_parser()._subparsers._group_actions[0].choices  # noqa: SLF001
    for name in stages:
        assert callable(getattr(steps, name)) and name in commands


def test_training_view_hides_the_test_split(tiny_project):
    view = load_processed().for_training()
    assert set(view.splits) == {"train", "val"} and "test" not in view.matrices
    assert not any(k.startswith("test_") for k in view.sequences)
    assert set(view.ratings["split"].unique()) == {"train", "val"}


def _flip_test_labels(folder: Path) -> None:
    """Replace every test rating r by (max + min - r): the labels training must never read."""
    meta = json.loads((folder / "meta.json").read_text())
    lo, hi = meta["rating_min"], meta["rating_max"]
    ratings = pl.read_parquet(folder / "ratings.parquet")
    flipped = pl.when(pl.col("split") == "test").then(lo + hi - pl.col("rating"))
    ratings = ratings.with_columns(
        flipped.otherwise(pl.col("rating")).cast(pl.Float32).alias("rating")
    )
    ratings.write_parquet(folder / "ratings.parquet")
    with np.load(folder / "matrices.npz") as f:
        arrays = {k: f[k] for k in f.files}
    with np.load(folder / "sequences.npz") as f:
        seq = {k: f[k] for k in f.files}
    if "test_rating" in seq:
        seq["test_rating"] = (lo + hi - seq["test_rating"]).astype(seq["test_rating"].dtype)
    np.savez(folder / "sequences.npz", **seq)
    data_key = next(k for k in arrays if "test" in k and k.endswith("data"))
    arrays[data_key] = (lo + hi - arrays[data_key]).astype(arrays[data_key].dtype)
    np.savez(folder / "matrices.npz", **arrays)


def _state(name: str) -> dict[str, np.ndarray]:
    path = MODELS_DIR / name / "model.npz"
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


@pytest.mark.parametrize("name", trainable())  # every family the registry trains, a new one too
def test_flipping_every_test_rating_leaves_learned_state_identical(tiny_project, name):
    params = load_params()
    train_model(name, params)
    before = _state(name)
    original = load_processed()
    original_matrix = original.matrices["test"].data.copy()  # loaded lazily: read it now
    _flip_test_labels(tiny_project / "data" / "processed")
    changed = load_processed()
    assert not np.array_equal(original.splits["test"].rating, changed.splits["test"].rating)
    assert not np.array_equal(original_matrix, changed.matrices["test"].data)
    shutil.rmtree(MODELS_DIR / name)
    train_model(name, params)
    after = _state(name)
    assert before.keys() == after.keys()
    for key in before:
        assert np.array_equal(before[key], after[key]), f"{name}: {key} moved with test labels"


def _folder_bytes(folder: Path) -> dict[str, bytes]:
    return {
        str(f.relative_to(folder)): f.read_bytes() for f in sorted(folder.rglob("*")) if f.is_file()
    }


@pytest.mark.parametrize("name", ["bias", "mf_bias", "autorec_item"])
def test_retraining_writes_byte_identical_outputs(tiny_project, name):
    """DVC hashes data/models/<m>; seconds in there would change dvc.lock on every repro."""
    params = load_params()
    train_model(name, params)
    first = _folder_bytes(MODELS_DIR / name)
    assert "seconds" not in (MODELS_DIR / name / "fit.json").read_text()
    shutil.rmtree(MODELS_DIR / name)
    train_model(name, params)
    assert _folder_bytes(MODELS_DIR / name) == first
    timing = json.loads((tiny_project / "data" / "timings" / f"{name}.json").read_text())
    assert timing["train_seconds"] > 0


def test_no_dvc_output_holds_seconds():
    """Timings are written beside the outputs, never declared as one (see movierec.store.timings)."""
    text = (ROOT / "dvc.yaml").read_text()
    assert "data/timings" not in text


def test_capabilities_are_declared_and_work(tiny_project):
    """What a family says it provides, it gives; the pipeline relies on nothing else."""
    params = load_params()
    data = load_processed()
    from movierec.models.trained import load_model

    for name in ("mf_bias", "mlp", "bias"):
        train_model(name, params)
        model = load_model(name, params, data)
        if name in providing("movie_vectors", trainable()):
            vectors, has = model.movie_vectors()
            assert vectors.shape[0] == data.n_items and has.dtype == bool and has.any()
        else:
            with pytest.raises(NotImplementedError):
                model.movie_vectors()
        if name in providing("hidden_units", trainable()):
            acts = model.hidden_units(data, "val", -1)
            assert acts.shape[0] == len(data.splits["val"]) and (acts >= 0).all()
    assert "word2vec" in MODELS and "word2vec" not in trainable()


def test_word2vec_is_not_a_train_stage_model(tiny_project):
    from movierec.errors import ConfigError
    from movierec.models.selection import train_section

    params = load_params()
    params.extra["train"] = {"models": ["bias", "word2vec"]}
    with pytest.raises(ConfigError, match="word2vec comes from its own stage"):
        train_section(params)
    params.extra["train"] = {"models": []}
    with pytest.raises(ConfigError, match="at least one model"):
        train_section(params)


def test_matrices_round_trip_is_what_flip_edits(tiny_project):
    """Guard for the helper above: the test matrix is the one whose data it flips."""
    folder = tiny_project / "data" / "processed"
    before = load_processed().matrices["test"].copy()
    _flip_test_labels(folder)
    after = load_processed().matrices["test"]
    meta = json.loads((folder / "meta.json").read_text())
    expected = sp.csr_matrix(before, copy=True)
    expected.data = meta["rating_min"] + meta["rating_max"] - expected.data
    assert np.allclose(after.toarray(), expected.toarray())


def test_tune_searches_on_validation_and_writes_the_command(tiny_project):
    from movierec.cli import main

    out = tiny_project / "tuned" / "bias.yaml"
    params = yaml.safe_load((tiny_project / "params.yaml").read_text())
    params["tune"]["spaces"]["bias"] = {"reg_user": ["float", 1.0, 10.0]}
    (tiny_project / "params.yaml").write_text(yaml.safe_dump(params))
    main(["tune", "--model", "bias", "--trials", "2", "--out", str(out)])
    text = out.read_text()
    assert "best val RMSE" in text and "dvc exp run -S 'models.bias.reg_user=" in text
    assert yaml.safe_load(text)["models"]["bias"]["reg_user"] >= 1.0


def test_tune_without_optuna_is_one_line(tiny_project, monkeypatch, capsys):
    import builtins

    from movierec.cli import main

    real_import = builtins.__import__

    def no_optuna(name, *args, **kwargs):
        if name == "optuna":
            raise ModuleNotFoundError("No module named 'optuna'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_optuna)
    with pytest.raises(SystemExit) as err:
        main(["tune", "--model", "bias", "--trials", "1"])
    assert err.value.code == 1
    assert 'pip install -e ".[tune]"' in capsys.readouterr().err


@pytest.mark.parametrize(
    ("section", "edit", "key"),
    [
        ("embed", {"windw": 5}, "embed.windw"),
        ("models", {"mf_biass": {}}, "models.mf_biass"),
        ("insight", {"perplexity": -1}, "insight.perplexity"),
        ("ensemble", {"method": "magic"}, "ensemble.method"),
        ("evaluate", {"k": [0]}, "evaluate.k"),
    ],
)
def test_every_section_is_checked_at_once_by_check_params(tiny_project, section, edit, key):
    """A typo in any section is one line naming the key from `movierec check-params` (CI runs
    it first); each stage checks the sections it reads before it does any work, so a
    stage's code, and its fingerprint, hold no other family's checks."""
    from movierec.errors import ConfigError
    from movierec.pipeline.params import load_params as step_params

    params = yaml.safe_load((tiny_project / "params.yaml").read_text())
    params[section] = {**(params.get(section) or {}), **edit}
    (tiny_project / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError, match=f"`{key}"):
        step_params()


def test_the_family_table_read_from_source_is_the_one_imported():
    """The fingerprints read the table without importing it; the registry imports it."""
    from movierec.models.families import FAMILIES
    from movierec.models.registry import family
    from movierec.pipeline.fingerprints import read_table

    assert read_table(ROOT / "src") == FAMILIES
    for name, row in FAMILIES.items():
        assert family(name).trained_by == row.stage, name  # the class and the table agree
