"""Benchmark every model family on one data set: accuracy, epoch time, evaluation time.

Runs the same library code as `dvc repro` (preprocess, train, evaluate) in a
scratch folder, with the project's params.yaml plus optional overrides, and prints
a markdown leaderboard. Usage:

    MOVIELENS_MIRROR=../shared/data/movielens python bench/models.py --dataset ml-100k
    MOVIELENS_MIRROR=../shared/data/movielens python bench/models.py --dataset ml-1m-custom \
        --overrides bench/ml-1m.yaml --out bench/results-ml-1m.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]


def dataset_section(name: str, mirror: str) -> dict:
    if name == "ml-1m-custom":
        folder = os.path.join(mirror, "ml-1m-no-timestamps")
        return {
            "dataset": "custom",
            "custom": {
                "ratings": f"{folder}/ratings.csv",
                "items": f"{folder}/items.csv",
                "users": f"{folder}/users.csv",
            },
        }
    return {"dataset": name, "mirror": mirror}


def merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        out[key] = (
            merge(out[key], value)
            if isinstance(value, dict) and isinstance(out.get(key), dict)
            else value
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument(
        "--mirror",
        default=os.environ.get("MOVIELENS_MIRROR", str(ROOT.parent / "shared/data/movielens")),
    )
    parser.add_argument("--overrides", help="YAML merged over params.yaml (e.g. bench/ml-1m.yaml)")
    parser.add_argument("--models", nargs="+", help="default: train.models")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()

    from movierec.config import parse_params
    from movierec.data.download import acquire
    from movierec.data.preprocess import preprocess
    from movierec.pipeline import evaluate_model, train_model

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["data"] = merge(raw["data"], dataset_section(args.dataset, os.path.abspath(args.mirror)))
    if args.overrides:
        raw = merge(raw, yaml.safe_load(Path(args.overrides).read_text()))
    models = args.models or raw["train"]["models"]
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as work:
        os.chdir(work)  # the pipeline writes data/ and metrics/ relative to the working folder
        Path("params.yaml").write_text(yaml.safe_dump(raw))
        params = parse_params(raw)
        t0 = time.perf_counter()
        acquire(params.data, params.seed, Path("data/raw"), Path("data/cache"))
        preprocess(
            Path("data/raw") / params.data.dataset, Path("data/processed"), params.data, params.seed
        )
        prep_s = time.perf_counter() - t0
        for name in models:
            fit = train_model(name, params)
            result = evaluate_model(name, params)
            epochs = [row["seconds"] for row in _history(name)]
            results[name] = {
                "test_rmse": result["test"]["rmse"],
                "test_mae": result["test"]["mae"],
                "test_ndcg@10": result["test"]["ndcg@10"],
                "test_recall@10": result["test"]["recall@10"],
                "val_rmse": result["val"]["rmse"],
                "train_seconds": fit["train_seconds"],
                "epochs": fit["epochs"],
                "best_epoch": fit["best_epoch"],
                "seconds_per_epoch": statistics.median(epochs) if epochs else None,
                "seconds_to_best": fit["seconds_to_best"],
                "score_seconds": result["score_seconds"],
                "eval_seconds": result["eval_seconds"],
                "accuracy": result["test"].get("accuracy"),
                "device": fit["device"],
            }
            print(
                f"{name}: test RMSE {results[name]['test_rmse']:.4f}", file=sys.stderr, flush=True
            )
    machine = f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"
    print(f"# {args.dataset}: models (preprocess {prep_s:.1f}s; {machine})\n")
    print(
        "| model | test RMSE | test MAE | NDCG@10 | Recall@10 | val RMSE | epochs (best) | s/epoch | train s | top-N eval s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in sorted(results.items(), key=lambda kv: kv[1]["test_rmse"]):
        spe = "" if r["seconds_per_epoch"] is None else f"{r['seconds_per_epoch']:.2f}"
        print(
            f"| {name} | {r['test_rmse']:.4f} | {r['test_mae']:.4f} | {r['test_ndcg@10']:.4f} | "
            f"{r['test_recall@10']:.4f} | {r['val_rmse']:.4f} | {r['epochs']} ({r['best_epoch']}) | {spe} | "
            f"{r['train_seconds']:.1f} | {r['eval_seconds']:.2f} |"
        )
    if args.out:
        Path(args.out).write_text(
            json.dumps({"dataset": args.dataset, "machine": machine, "models": results}, indent=2)
            + "\n"
        )


def _history(name: str) -> list[dict]:
    folder = Path("metrics/train") / name / "plots" / "metrics"
    path = folder / "seconds.tsv"
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()[1:]
    return [{"seconds": float(line.split("\t")[1])} for line in lines if line.strip()]


if __name__ == "__main__":
    main()
