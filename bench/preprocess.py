"""Benchmark the download + preprocess path: wall time and peak memory per data set.

Each data set runs in a fresh subprocess so peak RSS is its own. Usage:

    MOVIELENS_MIRROR=../shared/data/movielens python bench/preprocess.py \
        --datasets ml-100k ml-latest-small ml-1m-custom synthetic-25m
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import json, sys, time
from pathlib import Path
from movierec.config.params import parse_params
from movierec.data.download import acquire
from movierec.data.preprocess import preprocess
raw = json.loads(sys.argv[1]); work = Path(sys.argv[2])
params = parse_params(raw)
t0 = time.perf_counter()
acquire(params.data, params.seed, work / "raw", work / "cache")
t1 = time.perf_counter()
prepared = preprocess(work / "raw" / params.data.dataset, work / "processed", params.data, params.seed)
t2 = time.perf_counter()
import resource
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"acquire_s": t1 - t0, "preprocess_s": t2 - t1, "peak_rss_mib": peak,
                  "ratings": prepared.stats["ratings"]["total"]}))
"""


def configs(mirror: str) -> dict[str, dict]:
    ml1m = os.path.join(mirror, "ml-1m-no-timestamps")
    return {
        "ml-100k": {"data": {"dataset": "ml-100k", "mirror": mirror}},
        "ml-latest-small": {"data": {"dataset": "ml-latest-small", "mirror": mirror}},
        "ml-1m-custom": {
            "data": {
                "dataset": "custom",
                "custom": {
                    "ratings": f"{ml1m}/ratings.csv",
                    "items": f"{ml1m}/items.csv",
                    "users": f"{ml1m}/users.csv",
                },
            }
        },
        "synthetic-1m": {
            "data": {
                "dataset": "synthetic",
                "synthetic": {"n_users": 6040, "n_items": 3706, "n_ratings": 1_000_000},
            }
        },
        "synthetic-25m": {
            "data": {
                "dataset": "synthetic",
                "synthetic": {"n_users": 162_541, "n_items": 59_047, "n_ratings": 25_000_000},
            }
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--datasets", nargs="+", default=["ml-100k", "ml-latest-small", "ml-1m-custom"]
    )
    parser.add_argument(
        "--mirror", default=os.environ.get("MOVIELENS_MIRROR", "../shared/data/movielens")
    )
    parser.add_argument("--out", help="also write the results as JSON here")
    args = parser.parse_args()
    table = configs(os.path.abspath(args.mirror))
    results = {}
    print(
        f"# preprocess benchmark on {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print("| data set | ratings | acquire s | preprocess s | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|")
    for name in args.datasets:
        with tempfile.TemporaryDirectory() as work:
            t0 = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-c", CHILD, json.dumps(table[name]), work],
                capture_output=True,
                text=True,
            )
            wall = time.perf_counter() - t0
        if proc.returncode != 0:
            print(f"| {name} | failed: {proc.stderr.strip().splitlines()[-1]} |")
            continue
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        row.update(wall_s=wall)
        results[name] = row
        print(
            f"| {name} | {row['ratings']:,} | {row['acquire_s']:.2f} | {row['preprocess_s']:.2f} | "
            f"{row['peak_rss_mib']:.0f} |"
        )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
