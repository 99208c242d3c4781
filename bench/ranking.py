"""The ranking families on one data set, against the published EASE^R recipe.

    python bench/ranking.py --dataset ml-1m-custom --models pop,ease,ials,bpr
    python bench/ranking.py --dataset ml-latest-small --models pop,ease,ials,bpr,sasrec
    python bench/ranking.py --dataset ml-100k --split leave_last --models pop,ease,multvae,sasrec

Prepares the data set in a scratch folder with the project's params.yaml and
profiles.yaml (the same download and preprocess code as ``dvc repro``), fits the
binary EASE^R for each ``lambda`` of ``--lambdas`` and keeps the one validation
picks (the faithful baseline), then each family of ``--models`` with the
project's settings, then their ranking blend. ``--split`` names another
``data.split.strategy`` (``leave_last``: each user's latest rating is their test, the
one before their val, the sequential protocol). Writes
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
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--models", default="pop,ease,ials,bpr")
    parser.add_argument("--split", default="", help="data.split.strategy (default: params.yaml's)")
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

        def run(label: str, model):
            ctx = FitContext(
                seed=params.seed,
                progress=False,
                threads=threads,
                rank_validation=ranking_validation,
            )
            report = model.fit(data.for_training(), ctx)
            result = evaluate(model, data, protocol)
            per_user[label] = result["per_user"]["test"]
            out[label] = {
                "val_ndcg@10": result["val"]["ndcg@10"],
                "test_ndcg@10": result["test"]["ndcg@10"],
                "fit_seconds": report.train_seconds,
                "eval_seconds": result["total_eval_seconds"],
                "epochs": report.epochs,
            }
            print(label, json.dumps(out[label]), flush=True)
            return model

        faithful = None
        for lam in (float(x) for x in args.lambdas.split(",")):
            label = f"ease_binary_lambda_{lam:g}"
            run(
                label,
                MODELS["ease"][0](model_params("ease", {"lambda": lam, "weighting": "binary"})),
            )
            if faithful is None or out[label]["val_ndcg@10"] > out[faithful]["val_ndcg@10"]:
                faithful = label
        out["faithful_ease"] = out[faithful] | {"chosen": faithful}
        members = {n: run(n, create(n, params)) for n in args.models.split(",")}
        t0 = time.perf_counter()
        blend, fitted = fit_topn_blend(params, data, members, 10, protocol.threshold)
        blend.attach(members, data)
        blended = evaluate(blend, data, EvalParams(k=[10], splits=["test"]))
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
    suffix = f"-{args.split}" if args.split else ""
    path = ROOT / "bench" / f"results-ranking-{args.dataset}{suffix}.json"
    path.write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    print(f"-> {path}")


if __name__ == "__main__":
    main()
