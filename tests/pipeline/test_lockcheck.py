"""`movierec check-lock`: a committed dvc.lock that is not this code's is caught before
anything runs, in one line naming the stale stages and the fix."""

from __future__ import annotations

import hashlib
from pathlib import Path

from movierec.pipeline.fingerprints import fingerprint_files
from movierec.pipeline.lockcheck import check_lock, report, stale_code, stale_status

ROOT = Path(__file__).resolve().parents[2]


def _lock(prints: dict[str, str]) -> dict:
    stages = {}
    for name, text in prints.items():
        step, _, family = name.removesuffix(".txt").partition("/")
        stage = f"{step}@{family}" if family else step
        md5 = hashlib.md5(text.encode()).hexdigest()
        stages[stage] = {"deps": [{"path": f"data/code/{name}", "md5": md5}]}
    return {"schema": "2.0", "stages": stages}


def test_a_lock_of_this_code_is_current_and_one_edited_family_is_named():
    prints = fingerprint_files(ROOT)
    lock = _lock(prints)
    assert stale_code(ROOT, lock) == {}
    lock["stages"]["train@recvae"]["deps"][0]["md5"] = "0" * 32  # written before an edit
    assert stale_code(ROOT, lock) == {"train@recvae": ["data/code/train/recvae.txt"]}


def test_a_lock_naming_a_family_that_is_gone_is_stale():
    lock = {"stages": {"train@gone": {"deps": [{"path": "data/code/train/gone.txt", "md5": "x"}]}}}
    assert stale_code(ROOT, lock) == {"train@gone": ["data/code/train/gone.txt"]}


def test_status_counts_changed_sources_and_params_but_not_missing_data():
    status = {
        "fingerprint": [{"changed deps": {"src/movierec": "modified"}}],
        "train@bias": [
            {"changed deps": {"data/processed": "deleted", "data/code/train/bias.txt": "deleted"}},
            {"changed deps": {"params.yaml": {"models.bias.reg_user": "modified"}}},
        ],
        "preprocess": [{"changed deps": {"data/raw/ml-100k": "deleted"}}, {"changed outs": {}}],
    }
    assert stale_status(status) == {
        "fingerprint": ["src/movierec modified"],
        "train@bias": ["params.yaml:models.bias.reg_user modified"],
    }


def test_check_lock_on_a_stale_lock_is_one_line_naming_the_stages(tmp_path):
    (tmp_path / "stages").mkdir()
    lock = _lock(fingerprint_files(ROOT))
    lock["stages"]["evaluate@ease"]["deps"][0]["md5"] = "1" * 32
    import yaml

    path = tmp_path / "dvc.lock"
    path.write_text(yaml.safe_dump(lock))
    # the code is ROOT's: check_lock reads the lock beside it, so hand it ROOT's code via a copy
    import shutil

    shutil.copytree(ROOT / "src", tmp_path / "src")
    shutil.rmtree(tmp_path / "stages")
    shutil.copytree(ROOT / "stages", tmp_path / "stages")
    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    problems = check_lock(tmp_path, status={})
    assert problems == ["evaluate@ease: data/code/evaluate/ease.txt"]
    line = report(problems)
    assert "\n" not in line and "evaluate@ease" in line and "run `dvc repro`" in line
    assert report([]) == "check-lock: dvc.lock matches the code and params"
