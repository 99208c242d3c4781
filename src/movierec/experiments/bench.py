"""Benchmark every model on one data set: accuracy, seconds per epoch, seconds to the best
epoch, evaluation seconds and peak memory (``movierec bench``, ``metrics/bench.json``).

It runs the same library code as ``dvc repro`` (download, preprocess, train,
evaluate) in a scratch folder with the project's params plus optional overrides.
Each model trains in its own child process, so the peak resident memory reported
is that model's alone. Models a data set cannot serve (sequence models without
timestamps) are listed as skipped, with the reason.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from movierec.config.params import load_params, merge_params
from movierec.config.yaml_reader import read_yaml
from movierec.errors import ConfigError, MovierecError
from movierec.store.files import write_json, write_text

CUSTOM_SETS = {"ml-1m-custom": "ml-1m-no-timestamps"}
CUSTOM_PROFILES = {"ml-1m-custom": "ml-1m"}  # profiles.yaml entry for each custom set

# Download (or generate) and preprocess run in two children, so each reports its own
# seconds and peak memory (generating the synthetic 25M set is not preprocessing).
# Each child runs its work through the stages' run_cli, so a failure ends in the same one
# line ("error: ...") a stage prints, which _child passes on.
CHILD_DOWNLOAD = r"""
from movierec.train.kernels import pin_from_params; pin_from_params()  # as the stages compute
import json, resource, time
from pathlib import Path
from movierec.config.params import load_params
from movierec.data.download import acquire
from movierec.pipeline.runner import run_cli
from movierec.store.paths import CACHE, RAW
def main():
    params = load_params()
    t0 = time.perf_counter()
    acquire(params.data, params.seed, RAW, CACHE)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": time.perf_counter() - t0, "peak_rss_mib": peak}))
run_cli(main)
"""

CHILD_PREPARE = r"""
from movierec.train.kernels import pin_from_params; pin_from_params()  # as the stages compute
import json, resource, time
from pathlib import Path
from movierec.config.params import load_params
from movierec.data.preprocess import preprocess
from movierec.pipeline.runner import run_cli
from movierec.store.paths import PROCESSED, RAW
def main():
    params = load_params()
    t0 = time.perf_counter()
    prepared = preprocess(RAW / params.data.dataset, PROCESSED, params.data, params.seed)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": time.perf_counter() - t0, "peak_rss_mib": peak,
                      "ratings": prepared.stats["ratings"]["total"],
                      "has_timestamps": bool(prepared.meta["has_timestamps"])}))
run_cli(main)
"""

CHILD = r"""
from movierec.train.kernels import pin_from_params; pin_from_params()  # as the stages compute
import json, resource, sys
from movierec.train.budget import BudgetError
from movierec.config.params import load_params
from movierec.pipeline.evaluate_step import evaluate_model
from movierec.pipeline.runner import run_cli
from movierec.pipeline.train_step import train_model
def main():
    name = sys.argv[1]
    params = load_params()
    fit = train_model(name, params)
    try:
        result = evaluate_model(name, params)
        result.pop("per_user", None)  # the significance stage's input, not a bench record
    except BudgetError as err:  # the training's figures still count
        result = {"refused": str(err), "test": {}, "val": {}, "eval_seconds": None}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    import torch
    gpu = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    print(json.dumps({"fit": fit, "result": result, "peak_rss_mib": peak, "peak_gpu_mib": gpu}))
run_cli(main)
"""


CHILD_BLEND = r"""
from movierec.train.kernels import pin_from_params; pin_from_params()  # as the stages compute
import importlib, json, resource, sys
from movierec.config.params import load_params
from movierec.pipeline.runner import run_cli
def main():
    module, func = sys.argv[1:3]
    result = getattr(importlib.import_module(module), func)(load_params())
    result.pop("per_user", None)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"result": result, "peak_rss_mib": peak}, default=str))
run_cli(main)
"""
# The blend stages bench runs: section of params.yaml -> (module, function).
BLENDS = {
    "ensemble": ("movierec.blend.ensemble", "run_ensemble"),
    "ensemble_topn": ("movierec.blend.topn", "run_topn_blend"),
}


def dataset_section(name: str, mirror: str) -> dict:
    """``data:`` for a release name, or for a custom CSV set in the mirror (ml-1m-custom)."""
    if name in CUSTOM_SETS:
        folder = os.path.join(mirror, CUSTOM_SETS[name])
        return {
            "dataset": "custom",
            "profile": CUSTOM_PROFILES[name],
            "custom": {
                "ratings": f"{folder}/ratings.csv",
                "items": f"{folder}/items.csv",
                "users": f"{folder}/users.csv",
            },
        }
    return {"dataset": name, "mirror": mirror}


def cpu_name() -> str:
    """The processor's model name where the OS says it (Linux), else the platform's guess."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def matmul_gflops(n: int = 1024, repeats: int = 5) -> float:
    """This process's float32 matrix-product speed (GFLOP/s, best of ``repeats``): timings
    from two machines compare only in proportion to it, the MLP families' ranking most."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up: thread pool, first-call allocations
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _timed(func) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def machine() -> str:
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{platform.machine()} {cpu_name()}, {os.cpu_count()} cores "
        f"(float32 matmul {matmul_gflops():.0f} GFLOP/s on {torch.get_num_threads()} threads), "
        f"{device}, python {platform.python_version()}, torch {torch.__version__}"
    )


def run_bench(
    root: Path,
    dataset: str,
    mirror: str,
    overrides: dict | None = None,
    models: list[str] | None = None,
    progress: bool = True,
    ensemble: bool = True,
    keep_going: bool = False,
    on_model: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Benchmark ``models`` (default: train.models) on ``dataset``; returns the bench record.
    ``keep_going``: a family that fails or refuses (e.g. a size limit) is recorded under
    ``failed`` with its one-line reason instead of stopping the bench. ``on_model(record)``
    runs after the preprocessing and after each family, with the record so far."""
    from movierec.models.registry import MODELS, create  # deferred: torch and every family

    raw = read_yaml(root / "params.yaml")
    raw["data"] = merge_params(raw["data"], dataset_section(dataset, os.path.abspath(mirror)))
    if overrides:
        raw = merge_params(raw, overrides)
    names = models or raw["train"]["models"]
    unknown = [m for m in names if m not in MODELS]
    if unknown:
        raise MovierecError(f"unknown model {unknown[0]!r}; known models: {', '.join(MODELS)}")
    record: dict[str, Any] = {
        "dataset": dataset,
        "machine": machine(),
        "models": {},
        "skipped": {},
        "failed": {},
    }
    with tempfile.TemporaryDirectory(prefix="movierec-bench-") as tmp:
        work = Path(tmp)
        (work / "params.yaml").write_text(yaml.safe_dump(raw))
        if (root / "profiles.yaml").is_file():
            shutil.copy(root / "profiles.yaml", work / "profiles.yaml")
        params = load_params(work / "params.yaml")
        env = {**os.environ, "PYTHONHASHSEED": str(params.seed)}
        fetched = _child(work, env, "download", CHILD_DOWNLOAD)
        record["download_seconds"] = fetched["seconds"]
        record["download_peak_rss_mib"] = fetched["peak_rss_mib"]
        prepared = _child(work, env, "preprocess", CHILD_PREPARE)  # its own peak memory
        record["preprocess_seconds"] = prepared["seconds"]
        record["preprocess_peak_rss_mib"] = prepared["peak_rss_mib"]
        record["ratings"] = prepared["ratings"]
        for name in names:
            if on_model is not None:  # what is measured so far: preprocessing, earlier families
                on_model(record)
            if "sequences" in create(name, params).needs and not prepared["has_timestamps"]:
                record["skipped"][name] = "the data set has no timestamps"
                continue
            try:
                out = _child(work, env, name, CHILD, name)
            except MovierecError as err:
                if not keep_going:
                    raise
                record["failed"][name] = str(err).removeprefix(f"bench: {name} failed: ")
                if progress:
                    print(f"{name}: {record['failed'][name]}", file=sys.stderr, flush=True)
                continue
            fit, result = out["fit"], out["result"]
            test, val = result["test"], result["val"]
            record["models"][name] = {
                "test_rmse": test.get("rmse"),
                "test_mae": test.get("mae"),
                "test_ndcg@10": test.get("ndcg@10"),
                "test_recall@10": test.get("recall@10"),
                "val_rmse": val.get("rmse"),
                "val_ndcg@10": val.get("ndcg@10"),
                "epochs": fit["epochs"],
                "best_epoch": fit["best_epoch"],
                "seconds_per_epoch": fit["train_seconds"] / max(1, fit["epochs"]),
                "seconds_to_best": fit["seconds_to_best"],
                "train_seconds": fit["train_seconds"],
                "eval_seconds": result["eval_seconds"],
                "peak_rss_mib": out["peak_rss_mib"],
                "peak_gpu_mib": out.get("peak_gpu_mib"),
                "device": fit["device"],
            }
            if "refused" in result:
                record["models"][name]["eval_refused"] = result["refused"]
            if progress:
                rmse = record["models"][name]["test_rmse"]
                print(
                    f"{name}: test RMSE {'—' if rmse is None else f'{rmse:.4f}'}, "
                    f"NDCG@10 {test.get('ndcg@10', float('nan')):.4f}, "
                    f"{fit['train_seconds']:.1f}s"
                    + (f"; evaluation refused: {result['refused']}" if "refused" in result else ""),
                    file=sys.stderr,
                    flush=True,
                )
        if on_model is not None:
            on_model(record)
        judged = {n: r for n, r in record["models"].items() if not r.get("eval_refused")}
        rating_models = [n for n, r in judged.items() if r["test_rmse"] is not None]
        if ensemble and len(rating_models) >= 2:
            row = _bench_blend(work, raw, "ensemble", rating_models)
            result = row.pop("result")
            row |= {"members": result["blend"]["members"], "best_member": result["best_member"]}
            record["models"]["ensemble"] = row
            if progress:
                print(f"ensemble: test RMSE {row['test_rmse']:.4f}", file=sys.stderr)
        members = [n for n in judged if n != "ensemble"]
        if ensemble and len(members) >= 2:
            row = _bench_blend(work, raw, "ensemble_topn", members)
            result = row.pop("result")
            weights = result["blend"]["weights"]
            row |= {
                "val_ndcg@10": result["val"].get("ndcg@10"),  # cross-fitted, so it is reported
                "weights": {n: w for n, w in weights.items() if w > 0},
            }
            record["models"]["ensemble_topn"] = row
            if progress:
                print(f"ensemble_topn: test NDCG@10 {row['test_ndcg@10']:.4f}", file=sys.stderr)
    return record


def budget_overrides(hours: float) -> dict[str, Any]:
    """params.yaml overrides that give every train and evaluate stage ``hours``."""
    if not hours >= 0:
        raise ConfigError(f"--max-hours must be >= 0 (0 = no limit), got {hours}")
    return {"train": {"max_hours": hours}, "evaluate": {"max_hours": hours}}


def _child(work: Path, env: dict, what: str, code: str, *args: str) -> dict[str, Any]:
    """Run ``code`` in a child process in ``work``; its last stdout line (JSON)."""
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=work, env=env, capture_output=True, text=True
    )
    if proc.returncode < 0:  # no last words: say which signal, and the likely cause
        name = signal.Signals(-proc.returncode).name
        why = " (out of memory?)" if name == "SIGKILL" else ""
        raise MovierecError(f"bench: {what} failed: killed by {name}{why}")
    if proc.returncode != 0:  # run_cli's one line, "error: ...", is the child's last words
        tail = " ".join((proc.stderr or proc.stdout).strip().splitlines()[-1:])
        raise MovierecError(f"bench: {what} failed: {tail.removeprefix('error: ')}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _bench_blend(work: Path, raw: dict, section: str, members: list[str]) -> dict[str, Any]:
    """One blend stage over the benched ``members``, in its own child process (so its peak
    memory is its own); the bench row, plus the stage's full ``result``."""
    (work / "params.yaml").write_text(
        yaml.safe_dump(merge_params(raw, {section: {"models": members}}))
    )
    out = _child(work, dict(os.environ), section, CHILD_BLEND, *BLENDS[section])
    result = out["result"]
    test = result["test"]
    return {
        "test_rmse": test.get("rmse"),
        "test_mae": test.get("mae"),
        "test_ndcg@10": test.get("ndcg@10"),
        "test_recall@10": test.get("recall@10"),
        "val_rmse": None if section == "ensemble_topn" else result["val"].get("rmse"),
        "epochs": 1,
        "best_epoch": 1,
        "seconds_per_epoch": None,
        "seconds_to_best": result["train_seconds"],
        "train_seconds": result["train_seconds"],
        "eval_seconds": result["total_eval_seconds"],
        "peak_rss_mib": out["peak_rss_mib"],
        "device": "cpu",
        "result": result,
    }


def table(record: dict[str, Any]) -> str:
    """The README table for one bench record."""

    def f(value: Any, fmt: str) -> str:
        return "—" if value is None else format(value, fmt)

    lines = [
        f"Data set {record['dataset']} ({record.get('ratings', 0):,} ratings; preprocess "
        f"{record.get('preprocess_seconds', 0):.1f}s). Machine: {record['machine']}.",
        "",
        "| model | test RMSE | val NDCG@10 | test NDCG@10 | epochs (best) | s/epoch | s to best | train s | eval s | peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    # rating models by test RMSE, then the rankers (no RMSE) by test NDCG@10
    rows = sorted(
        record["models"].items(),
        key=lambda kv: (
            kv[1]["test_rmse"] is None,
            kv[1]["test_rmse"] or -(kv[1]["test_ndcg@10"] or 0),
        ),
    )
    for name, r in rows:
        lines.append(
            f"| {name} | {f(r['test_rmse'], '.4f')} | {f(r.get('val_ndcg@10'), '.4f')} | "
            f"{f(r['test_ndcg@10'], '.4f')} | "
            f"{r['epochs']} ({r['best_epoch']}) | {f(r['seconds_per_epoch'], '.2f')} | "
            f"{f(r['seconds_to_best'], '.1f')} | {f(r['train_seconds'], '.1f')} | "
            f"{f(r['eval_seconds'], '.2f')} | {f(r['peak_rss_mib'], '.0f')} |"
        )
    for name, why in record.get("skipped", {}).items():
        lines.append(f"| {name} | skipped: {why} | | | | | | | | |")
    for name, why in record.get("failed", {}).items():
        lines.append(f"| {name} | failed: {why} | | | | | | | | |")
    for name, r in record["models"].items():
        if r.get("eval_refused"):
            lines.append(f"| {name} | evaluation refused: {r['eval_refused']} | | | | | | | | |")
    return "\n".join(lines) + "\n"


def write_bench(record: dict[str, Any], out: Path, markdown: Path | None = None) -> None:
    write_json(out, record)
    if markdown is not None:
        write_text(markdown, table(record))
