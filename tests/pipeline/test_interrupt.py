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

ROOT = Path(__file__).resolve().parents[2]

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


def _trained_once(project: Path) -> tuple[Path, dict[str, str]]:
    """Train mf for one epoch (the previous good model), then set up a long run."""
    _long_training(project, 1)
    first = _start(project)
    assert first.wait(timeout=120) == 0, first.communicate()
    model_dir = project / "data" / "models" / "mf"
    before = _digest(model_dir)
    _long_training(project, 400)
    return model_dir, before


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
    model_dir, before = _trained_once(tiny_project)
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
    from movierec.pipeline.runner import _proc_stat

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


def test_interrupted_at_many_points_of_an_epoch_keeps_the_last_model(tiny_project: Path):
    """Ctrl-C or SIGTERM at eight points spread over the first epochs (batch of 16 rows on
    the tiny set: a few milliseconds a batch): each time one line, the right exit code,
    well within the grace time, the previous model byte for byte, no temporary left."""
    model_dir, before = _trained_once(tiny_project)
    for i, delay in enumerate([0.0, 0.013, 0.029, 0.047, 0.071, 0.11, 0.17, 0.26]):
        proc = _start(tiny_project)
        _wait_until_training(tiny_project, proc)
        time.sleep(delay)
        sent = signal.SIGINT if i % 2 == 0 else signal.SIGTERM
        start = time.monotonic()
        proc.send_signal(sent)
        _, err = proc.communicate(timeout=60)
        assert time.monotonic() - start < 10, "slow to stop"
        assert proc.returncode == (130 if sent == signal.SIGINT else 143), (delay, err)
        assert err.strip().count("\n") == 0, err
        assert err.startswith("interrupted:" if sent == signal.SIGINT else "terminated"), err
        assert _digest(model_dir) == before, delay
        assert not list((tiny_project / "metrics" / "train").glob(".mf.*")), delay
        assert not list((tiny_project / "data" / "models").glob(".mf.*")), delay


STUCK = r"""
import queue, sys, threading
from movierec.pipeline.runner import run_cli

def main():
    # a library's worker that never finishes, and a queue whose task is never marked
    # done: how dvclive's Studio queue held an interrupted training for ever
    threading.Thread(target=threading.Event().wait, daemon=False).start()
    q = queue.Queue()
    q.put(1)
    print("ready", flush=True)
    q.join()

run_cli(main)
"""


@pytest.mark.parametrize("sent", [signal.SIGINT, signal.SIGTERM])
def test_a_stuck_library_thread_cannot_keep_an_interrupted_process_alive(tmp_path, sent):
    env = {**os.environ, "MOVIEREC_EXIT_GRACE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", STUCK],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "ready"
    start = time.monotonic()
    proc.send_signal(sent)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - start < 8
    assert proc.returncode == (130 if sent == signal.SIGINT else 143)
    assert err.strip().count("\n") == 0 and err.startswith(("interrupted:", "terminated")), err


def test_the_curve_log_writes_what_dvc_plots_and_metrics_read(tmp_path):
    """dvclive's layout, written without a thread: a summary with the latest values and the
    last step, one TSV a curve, a curve that skips an epoch keeps its own steps."""
    import json
    import threading

    from movierec.store.curves import CurveLog

    threads = threading.active_count()
    log = CurveLog(tmp_path)
    for loss, rmse in [(1.5, 1.1), (0.9, None), (0.7, 0.95)]:
        log.log_metric("train_loss", loss)
        if rmse is not None:
            log.log_metric("val_rmse", rmse)
        log.next_step()
    log.summary.update({"epochs": 3, "best_epoch": 3})
    log.close()
    assert threading.active_count() == threads
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert list(summary) == ["train_loss", "val_rmse", "step", "epochs", "best_epoch"]
    assert summary == {"train_loss": 0.7, "val_rmse": 0.95, "step": 2, "epochs": 3, "best_epoch": 3}
    plots = tmp_path / "plots" / "metrics"
    assert (plots / "train_loss.tsv").read_text() == "step\ttrain_loss\n0\t1.5\n1\t0.9\n2\t0.7\n"
    assert (plots / "val_rmse.tsv").read_text() == "step\tval_rmse\n0\t1.1\n2\t0.95\n"
