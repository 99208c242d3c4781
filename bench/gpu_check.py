"""The GPU check: every torch family on ml-100k on one CUDA GPU, in a few minutes.

    bash bench/gpu_check.sh            # writes bench/results-gpu.json, prints one table

For each family that trains with torch (the registry's ``TorchRecommender``
subclasses), it trains and evaluates with
``train.device: cuda``, once in float32 and once under bfloat16 autocast
(``train.amp``), through ``movierec bench`` (the same library code as ``dvc repro``,
each family in its own child process). Per family: test RMSE / NDCG@10 in both
precisions, seconds per epoch, full-ranking (evaluation) seconds and peak GPU
memory. Then EASE's dense ``n_items x n_items`` solve on the GPU against the CPU,
for ml-100k's catalogue and a 20,000-movie one.

The whole check keeps to ``--minutes`` (default 8): families it has no time left
for are listed as not run. On a machine without a CUDA GPU it says so in one line
and exits 0, so the same command is safe everywhere.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results-gpu.json"


def torch_families() -> list[str]:
    """The families whose fit runs on ``train.device``: the torch networks."""
    from movierec.models.registry import MODELS
    from movierec.models.torch_base import TorchRecommender

    return [name for name, (cls, _) in MODELS.items() if issubclass(cls, TorchRecommender)]


def no_gpu_reason(device: str) -> str | None:
    """Why the check cannot run here, in a few words; None when it can."""
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        return f"no CUDA GPU on this machine (torch {torch.__version__})"
    return None


def ease_solve(device: str, sizes: tuple[int, ...] = (1682, 20_000)) -> list[dict[str, Any]]:
    """Seconds of EASE's dense solve (``ease_weights``) on ``device`` and on the CPU, on a
    random Gram-like SPD matrix of each size (the solve's cost does not depend on the data)."""
    import torch

    from movierec.models.ease import ease_weights

    rows = []
    for n in sizes:
        gen = torch.Generator().manual_seed(n)
        x = (torch.rand(4 * n, n, generator=gen) < 0.02).float()
        gram_cpu = x.T @ x
        row: dict[str, Any] = {"items": n}
        for where in (device, "cpu"):
            if where == "cpu" and n > 5000:
                row["cpu_seconds"] = None  # minutes on a laptop CPU: not worth the GPU's time
                continue
            gram = gram_cpu.to(where)
            ease_weights(gram, 500.0)  # warm-up: kernels, workspace
            if where != "cpu" and where != "meta":
                torch.cuda.synchronize()
            start = time.perf_counter()
            ease_weights(gram, 500.0)
            if where != "cpu" and where != "meta":
                torch.cuda.synchronize()
            row["gpu_seconds" if where != "cpu" else "cpu_seconds"] = time.perf_counter() - start
        if where != "meta" and device.startswith("cuda"):
            row["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
        rows.append(row)
    return rows


def run(mirror: str, device: str, minutes: float, models: list[str] | None) -> dict[str, Any]:
    from movierec.experiments.bench import machine, run_bench

    deadline = time.monotonic() + 60 * minutes
    names = models or torch_families()
    record: dict[str, Any] = {
        "dataset": "ml-100k",
        "device": device,
        "machine": machine(),
        "families": {},
        "not_run": [],
    }
    import torch

    record["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else device
    for name in names:
        if time.monotonic() > deadline - 20:
            record["not_run"].append(name)
            continue
        row: dict[str, Any] = {}
        for precision, amp in (("fp32", False), ("bf16", True)):
            overrides = {"train": {"device": device, "amp": amp, "threads": 0}}
            bench = run_bench(
                ROOT,
                "ml-100k",
                mirror,
                overrides,
                [name],
                progress=False,
                ensemble=False,
                keep_going=True,
            )
            if name in bench["failed"]:
                row[precision] = {"failed": bench["failed"][name]}
                continue
            got = bench["models"].get(name, {})
            row[precision] = {
                key: got.get(key)
                for key in (
                    "test_rmse",
                    "test_ndcg@10",
                    "val_rmse",
                    "val_ndcg@10",
                    "epochs",
                    "seconds_per_epoch",
                    "train_seconds",
                    "eval_seconds",
                    "peak_gpu_mib",
                    "device",
                )
            }
        record["families"][name] = row
        print(f"gpu_check: {name} done", file=sys.stderr, flush=True)
    record["ease_solve"] = ease_solve(device)
    return record


def _f(value: Any, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def table(record: dict[str, Any]) -> str:
    lines = [
        f"GPU check on {record['gpu']} (ml-100k, train.device {record['device']})",
        "",
        "| family | test RMSE fp32 | bf16 | test NDCG@10 fp32 | bf16 | s/epoch fp32 | bf16 "
        "| full-ranking s | peak GPU MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in record["families"].items():
        a, b = row.get("fp32", {}), row.get("bf16", {})
        if "failed" in a or "failed" in b:
            why = a.get("failed") or b.get("failed")
            lines.append(f"| {name} | failed: {why} |  |  |  |  |  |  |  |")
            continue
        lines.append(
            f"| {name} | {_f(a.get('test_rmse'), '.4f')} | {_f(b.get('test_rmse'), '.4f')} "
            f"| {_f(a.get('test_ndcg@10'), '.4f')} | {_f(b.get('test_ndcg@10'), '.4f')} "
            f"| {_f(a.get('seconds_per_epoch'), '.2f')} | {_f(b.get('seconds_per_epoch'), '.2f')} "
            f"| {_f(a.get('eval_seconds'), '.2f')} "
            f"| {_f(max(a.get('peak_gpu_mib') or 0, b.get('peak_gpu_mib') or 0) or None, '.0f')} |"
        )
    if record["not_run"]:
        lines.append(f"\nnot run (time budget): {', '.join(record['not_run'])}")
    lines += ["", "| EASE solve, movies | GPU s | CPU s |", "|---:|---:|---:|"]
    for row in record["ease_solve"]:
        lines.append(
            f"| {row['items']:,} | {_f(row.get('gpu_seconds'), '.3f')} "
            f"| {_f(row.get('cpu_seconds'), '.3f')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--minutes", type=float, default=8.0)
    parser.add_argument("--models", nargs="*", default=None)
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    reason = no_gpu_reason(args.device)
    if reason:
        print(f"gpu_check: {reason}; nothing to measure (run it where a GPU is at hand)")
        return 0
    mirror = os.environ.get("MOVIELENS_MIRROR") or str(ROOT.parent / "shared/data/movielens")
    from movierec.pipeline.runner import run_cli
    from movierec.store.files import write_json

    record = run_cli(lambda: run(mirror, args.device, args.minutes, args.models))
    write_json(args.out, record)
    print(table(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
