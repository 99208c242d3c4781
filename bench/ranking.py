"""The ranking families on one data set, against the published EASE^R recipe.

    python bench/ranking.py --dataset ml-1m-custom --models pop,ease,ials,bpr
    python bench/ranking.py --dataset ml-latest-small --models pop,ease,ials,bpr,sasrec
    python bench/ranking.py --dataset ml-100k --split leave_last --refit \
        --set models.sasrec.dropout=0.2 --models pop,ease,multvae,sasrec

Prepares the data set in a scratch folder with the project's params.yaml and
profiles.yaml (the same download and preprocess code as ``dvc repro``), fits the
binary EASE^R for each ``lambda`` of ``--lambdas`` and keeps the one validation
picks (the faithful baseline), then each family of ``--models`` with the
project's settings, then their ranking blend. ``--split`` names another
``data.split.strategy`` (``leave_last``: each user's latest rating is their test, the
one before their val, the sequential protocol). ``--refit`` fits each family that can
(``refits()``) a second time on train + val for the epochs val selected, and reports
test with that copy, which scores each user with their val rating as history (as
``train.refit`` does in the pipeline; the blend still fits on the first fits' val
scores and tests with them). ``--set models.sasrec.dropout=0.2`` overrides a
params.yaml value (repeatable; written to the JSON). Writes
``bench/results-ranking-<dataset>[-<split>].json``: val / test NDCG@10, fit seconds,
full-ranking evaluation seconds (val and test, every user) per model, and the
blend's test NDCG@10 against each member over the same test users (bootstrap 95%
interval, Wilcoxon p, Holm-adjusted over the members).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--models", default="pop,ease,ials,bpr")
    parser.add_argument("--split", default="", help="data.split.strategy (default: params.yaml's)")
    parser.add_argument("--refit", action="store_true", help="test with refits on train + val")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="params.yaml override"
    )
    parser.add_argument("--lambdas", default="100,200,500,1000,2000")
    parser.add_argument("--mirror", default=os.environ.get("MOVIELENS_MIRROR", ""))
    args = parser.parse_args()

    import torch
    from threadpoolctl import threadpool_limits

    from movierec.blend.topn import fit_topn_blend
    from movierec.config.params import load_params, merge_params
    from movierec.config.sections import EvalParams
    from movierec.data.download import acquire
    from movierec.data.preprocess import preprocess
    from movierec.data.processed import load_processed
    from movierec.evaluation.protocol import evaluate, ranking_validation
    from movierec.evaluation.significance import compare_pair, holm, sample_of
    from movierec.experiments.bench import dataset_section
    from movierec.models.base import FitContext
    from movierec.models.registry import MODELS, create, model_params

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["data"] = merge_params(
        raw["data"], dataset_section(args.dataset, os.path.abspath(args.mirror))
    )
    if args.split:
        raw["data"]["split"]["strategy"] = args.split
    overrides = dict(_override(raw, item) for item in args.set)
    threads = raw["train"].get("threads") or 2
    torch.set_num_threads(threads)
    threadpool_limits(threads)
    out: dict[str, dict] = {}
    per_user: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="movierec-ranking-") as tmp:
        work = Path(tmp)
        (work / "params.yaml").write_text(yaml.safe_dump(raw))
        shutil.copy(ROOT / "profiles.yaml", work / "profiles.yaml")
        os.chdir(work)
        params = load_params()
        acquire(params.data, params.seed, work / "data/raw", work / "data/cache")
        preprocess(
            work / "data/raw" / params.data.dataset,
            work / "data/processed",
            params.data,
            params.seed,
        )
        data = load_processed(work / "data/processed")
        protocol = EvalParams(k=[10])
        test_only = EvalParams(k=[10], splits=["test"])

        def run(label: str, make):
            ctx = FitContext(
                seed=params.seed,
                progress=False,
                threads=threads,
                rank_validation=ranking_validation,
            )
            model = make()
            report = model.fit(data.for_training(), ctx)
            result = evaluate(model, data, protocol)
            out[label] = {
                "val_ndcg@10": result["val"]["ndcg@10"],
                "test_ndcg@10": result["test"]["ndcg@10"],
                "fit_seconds": report.train_seconds,
                "eval_seconds": result["total_eval_seconds"],
                "epochs": report.epochs,
            }
            if args.refit and model.refits():
                copy = make()
                again = copy.fit(
                    data.with_val_in_train().for_training(),
                    replace(ctx, epochs=max(1, report.best_epoch)),
                )
                result = evaluate(copy, data.with_val_in_train(), test_only)
                out[label] |= {
                    "test_ndcg@10": result["test"]["ndcg@10"],
                    "refit": True,
                    "refit_seconds": again.train_seconds,
                }
            per_user[label] = result["per_user"]["test"]
            print(label, json.dumps(out[label]), flush=True)
            return model

        faithful = None
        for lam in (float(x) for x in args.lambdas.split(",")):
            label = f"ease_binary_lambda_{lam:g}"
            binary = model_params("ease", {"lambda": lam, "weighting": "binary"})
            run(label, lambda binary=binary: MODELS["ease"][0](binary))
            if faithful is None or out[label]["val_ndcg@10"] > out[faithful]["val_ndcg@10"]:
                faithful = label
        out["faithful_ease"] = out[faithful] | {"chosen": faithful}
        members = {
            n: run(n, lambda n=n: create(n, params)) for n in args.models.split(",")
        }
        t0 = time.perf_counter()
        blend, fitted = fit_topn_blend(params, data, members, 10, protocol.threshold)
        blend.attach(members, data)
        blended = evaluate(blend, data, test_only)
        test = blended["test"]
        mine = sample_of(blended["per_user"]["test"], "ndcg@10")
        pairs = {
            n: compare_pair("ndcg@10", mine, sample_of(per_user[n], "ndcg@10"), 2000, params.seed)
            for n in members
        }
        adjusted = holm([q["p_value"] for q in pairs.values()])
        for pair, p_holm in zip(pairs.values(), adjusted, strict=True):
            pair["p_holm"] = float(p_holm)
        best = max(members, key=lambda n: out[n]["val_ndcg@10"])
        out["ensemble_topn"] = {
            "val_ndcg@10": fitted["val"]["ndcg@10"],
            "test_ndcg@10": test["ndcg@10"],
            "fit_seconds": time.perf_counter() - t0,
            "weights": {n: w for n, w in fitted["blend"]["weights"].items() if w > 0},
            "floor": fitted["blend"]["floor"],
            "best_member": best,
            "vs_members": pairs,
        }
        print("ensemble_topn", json.dumps(out["ensemble_topn"]), flush=True)
    if args.refit or overrides:
        out["_protocol"] = {"refit": args.refit, "overrides": overrides}
    suffix = f"-{args.split}" if args.split else ""
    path = ROOT / "bench" / f"results-ranking-{args.dataset}{suffix}.json"
    path.write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    print(f"-> {path}")


def _override(raw: dict, item: str) -> tuple[str, object]:
    """Set ``a.b.c=value`` (YAML-typed) in the params.yaml dict ``raw``."""
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise SystemExit(f"--set {item!r}: expected KEY=VALUE, e.g. models.sasrec.dropout=0.2")
    *path, last = key.split(".")
    node = raw
    for part in path:
        node = node.setdefault(part, {})
    node[last] = yaml.safe_load(value)
    return key, node[last]


if __name__ == "__main__":
    main()
