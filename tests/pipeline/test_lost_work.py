"""Nothing lost: a failed or interrupted stage under `dvc repro` leaves the previous good
outputs in place, and a plain `dvc repro` afterwards completes.

Every output in dvc.yaml is ``persist: true``: DVC does not delete it before running the
stage, and the stage replaces it only by an atomic rename once the new one is whole. For
each stage kind (preprocess, train, evaluate, a blend) and each way of failing (a typo in
params.yaml, SIGTERM or SIGKILL of the stage, SIGKILL of `dvc` itself), the outputs are
byte for byte what they were, and the pipeline then finishes.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_pipeline import _project, _run

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc and signals"),
]

# stage -> (its outputs, the script DVC runs, a typo that only this stage reads)
STAGES = {
    "preprocess": (
        ["data/processed", "metrics/data.json"],
        "stages/preprocess.py",
        ("data.split.ratios", [0.8, 0.1]),
    ),
    "train@mf": (
        ["data/models/mf", "metrics/train/mf"],
        "stages/train.py",
        ("models.mf.lr", "abc"),
    ),
    "evaluate@mf": (
        [
            "data/predictions/mf.parquet",
            "data/scores/mf",
            "data/per_user/mf.parquet",
            "metrics/details/mf.json",
            "metrics/eval/mf.json",
        ],
        "stages/evaluate.py",
        ("evaluate.user_chunk", "many"),
    ),
    "ensemble": (
        ["data/ensemble", "data/per_user/ensemble.parquet", "metrics/eval/ensemble.json"],
        "stages/ensemble.py",
        ("ensemble.alpha", "strong"),
    ),
}
FAILURES = ["typo", "sigterm", "sigkill", "kill-dvc"]


def _digest(root: Path, outputs: list[str]) -> dict[str, str]:
    found = {}
    for out in outputs:
        path = root / out
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            found[str(f.relative_to(root))] = (
                hashlib.sha256(f.read_bytes()).hexdigest() if f.exists() else "missing"
            )
    return found


def _params(proj: Path) -> dict:
    return yaml.safe_load((proj / "params.yaml").read_text())


def _write_params(proj: Path, params: dict) -> None:
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch project on a small synthetic set, reproduced once: the good outputs."""
    proj = _project(tmp_path_factory.mktemp("lost-work"))
    params = _params(proj)
    params["data"]["dataset"] = "synthetic"
    params["data"]["synthetic"] |= {"n_users": 150, "n_items": 200, "n_ratings": 8000}
    params["train"]["models"] = ["bias", "mf"]
    params["models"]["mf"] |= {"epochs": 3}
    params["embed"]["epochs"] = 2
    params["insight"]["tsne_movies"] = 60
    _write_params(proj, params)
    done = _run(proj, "dvc", "repro", mirror=None)
    assert done.returncode == 0, done.stdout + done.stderr
    return proj


def _stage_pid(proj: Path, script: str, timeout: float = 60.0) -> int | None:
    """The pid of the python process running ``script`` in ``proj`` (as DVC runs it),
    once it exists (in ``proj`` only: another pipeline may be running on the machine)."""
    deadline = time.time() + timeout
    while True:
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                args = cmdline.read_bytes().split(b"\0")
                if len(args) < 2 or b"python" not in args[0] or args[1] != script.encode():
                    continue
                if Path(os.readlink(cmdline.parent / "cwd")) == proj.resolve():
                    return int(cmdline.parent.name)
            except OSError:
                continue
        if time.time() > deadline:
            return None
        time.sleep(0.02)


def _sigterm_caught(pid: int) -> bool:
    """Whether ``pid`` has its own SIGTERM handler (the stage's clean-up) in place."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = int(re.search(r"^SigCgt:\s*([0-9a-f]+)", status, re.M).group(1), 16)
    return bool(caught & (1 << (signal.SIGTERM - 1)))


def _wait_until_working(proj: Path, stage: str, pid: int, how: str) -> None:
    """Until the stage is past its start-up (its signal handlers and launcher watch are
    in place): for training, until the first epoch is logged; otherwise until it catches
    SIGTERM, and a moment for the launcher watch to start."""
    deadline = time.time() + 60
    while time.time() < deadline and Path(f"/proc/{pid}").exists():
        if stage == "train@mf":
            if list(proj.glob("metrics/train/.mf.*.tmp/plots/metrics/*.tsv")):
                return
        elif _sigterm_caught(pid):
            if how == "kill-dvc":  # the launcher watch starts just after the handlers
                time.sleep(0.3)
            return  # SIGTERM now: a stage on the scratch set may finish within 0.3 s
        time.sleep(0.02)


def _slow_down(proj: Path, params: dict, stage: str) -> None:
    """A change that reruns ``stage`` and makes it run long enough to be interrupted
    (seconds, not the fraction of a second the scratch set takes)."""
    if stage == "train@mf":
        params["models"]["mf"] |= {"epochs": 400, "patience": 400, "batch_size": 16}
    elif stage == "preprocess":  # a raw set of 1.5M ratings, made before the cut
        params["data"]["synthetic"] |= {"n_users": 6000, "n_items": 3000, "n_ratings": 1_500_000}
        _write_params(proj, params)
        made = _run(proj, "dvc", "repro", "-f", "-s", "download", mirror=None)
        assert made.returncode == 0, made.stdout + made.stderr


def _interrupt(proj: Path, stage: str, script: str, how: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    dvc = subprocess.Popen(
        ["dvc", "repro", "-f", "-s", stage],
        cwd=proj,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    pid = _stage_pid(proj, script)
    assert pid is not None, dvc.communicate(timeout=120)
    if how != "sigkill":
        _wait_until_working(proj, stage, pid, how)
    if not Path(f"/proc/{pid}").exists():
        pytest.fail(f"{stage} ended before it could be interrupted: _slow_down must slow it")
    if how == "sigterm":
        os.kill(pid, signal.SIGTERM)
    elif how == "sigkill":
        os.kill(pid, signal.SIGKILL)
    else:  # the launcher dies: the stage must stop by itself and keep the old outputs
        os.kill(dvc.pid, signal.SIGKILL)
    out, err = dvc.communicate(timeout=120)
    deadline = time.time() + 60
    while _stage_pid(proj, script, timeout=0.1) is not None and time.time() < deadline:
        time.sleep(0.1)  # an orphaned stage ends within its grace time
    assert _stage_pid(proj, script, timeout=0.1) is None, "the stage outlived its launcher"
    return subprocess.CompletedProcess(dvc.args, dvc.returncode, out, err)


@pytest.mark.parametrize("how", FAILURES)
@pytest.mark.parametrize("stage", list(STAGES))
def test_a_failed_stage_keeps_the_previous_outputs_and_repro_then_completes(
    project: Path, stage: str, how: str
):
    outputs, script, (key, bad) = STAGES[stage]
    before = _digest(project, outputs)
    assert before and "missing" not in before.values()
    good = _params(project)
    if how == "typo":
        broken = _params(project)
        *path, last = key.split(".")
        section = broken
        for part in path:
            section = section[part]
        section[last] = bad
        _write_params(project, broken)
        failed = _run(project, "dvc", "repro", stage, mirror=None)
        assert failed.returncode != 0
        lines = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and "params.yaml" in lines[0], failed.stderr
    else:
        slow = _params(project)
        _slow_down(project, slow, stage)
        _write_params(project, slow)
        failed = _interrupt(project, stage, script, how)
        assert failed.returncode != 0
    assert _digest(project, outputs) == before  # nothing deleted, nothing half-written
    if how != "sigkill":  # a stage that could clean up did (SIGKILL's are the next writer's)
        assert not list(project.glob("**/.*.tmp")), "a temporary outlived the stage"
    _write_params(project, good)
    again = _run(project, "dvc", "repro", mirror=None)
    assert again.returncode == 0, again.stdout + again.stderr
    status = _run(project, "dvc", "status", mirror=None)
    assert "changed" not in status.stdout, status.stdout
    assert _digest(project, outputs) == before  # the same seed: the same outputs again
