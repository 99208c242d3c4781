"""Interrupted training loses nothing: Ctrl-C is one line, SIGKILL leaves the old model intact."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")


def _long_training(project: Path, epochs: int) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["models"]["mf"] |= {"epochs": epochs, "patience": epochs, "batch_size": 16}
    (project / "params.yaml").write_text(yaml.safe_dump(params))


def _start(project: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "stages" / "train.py"), "mf"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_until_training(project: Path, proc: subprocess.Popen[str]) -> None:
    """Until the first epoch has been logged (the run is mid-way through writing)."""
    deadline = time.time() + 120
    while time.time() < deadline:
        if list((project / "metrics" / "train").glob(".mf.*.tmp/plots/metrics/*.tsv")):
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("training did not start")


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_ctrl_c_is_one_line_and_leaves_nothing(tiny_project: Path):
    _long_training(tiny_project, 400)
    proc = _start(tiny_project)
    _wait_until_training(tiny_project, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.strip().count("\n") == 0 and err.startswith("interrupted:"), err
    assert not (tiny_project / "data" / "models" / "mf").exists()
    assert not (tiny_project / "metrics" / "train" / "mf").exists()
    assert not list((tiny_project / "metrics" / "train").glob(".mf.*"))


def test_sigkill_keeps_the_previous_model_and_the_next_run_completes(tiny_project: Path):
    _long_training(tiny_project, 1)
    first = _start(tiny_project)
    assert first.wait(timeout=120) == 0, first.communicate()
    model_dir = tiny_project / "data" / "models" / "mf"
    before = _digest(model_dir)
    _long_training(tiny_project, 400)
    proc = _start(tiny_project)
    _wait_until_training(tiny_project, proc)
    proc.kill()
    proc.communicate(timeout=60)
    assert _digest(model_dir) == before  # untouched, still loadable
    _long_training(tiny_project, 2)
    again = _start(tiny_project)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert "best epoch" in out or "epoch" in out
    assert not list((tiny_project / "metrics" / "train").glob(".mf.*"))
    assert (model_dir / "model.npz").is_file()


def _children(pid: int) -> list[int]:
    from movierec.stage import _proc_stat

    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        info = _proc_stat(int(stat.parent.name))
        if info is not None and info[1] == pid:
            found.append(int(stat.parent.name))
    return found


def _running(pid: int) -> bool:
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_killing_the_launcher_alone_stops_the_stage(tiny_project: Path):
    """As `kill <pid of dvc>` does: the stage, run through a shell as DVC runs it, is not
    left behind as an orphan; it stops as for SIGTERM and leaves nothing half-written."""
    _long_training(tiny_project, 400)
    stage = f"{sys.executable} {ROOT / 'stages' / 'train.py'} mf 2> stage.err; true"
    launcher = subprocess.Popen(
        [sys.executable, "-c", f"import subprocess; subprocess.run(['sh', '-c', {stage!r}])"],
        cwd=tiny_project,
        env={**os.environ, "DVC_STAGE": "train@mf"},
    )
    _wait_until_training(tiny_project, launcher)
    (shell,) = _children(launcher.pid)
    (trainer,) = _children(shell)
    launcher.kill()
    launcher.wait(timeout=30)
    deadline = time.time() + 60
    while _running(trainer) and time.time() < deadline:
        time.sleep(0.1)
    assert not _running(trainer), "the stage outlived its launcher"
    err = (tiny_project / "stage.err").read_text()
    assert err.startswith("terminated (SIGTERM):") and err.strip().count("\n") == 0, err
    assert not (tiny_project / "data" / "models" / "mf").exists()
    assert not list((tiny_project / "metrics" / "train").glob(".mf.*"))
