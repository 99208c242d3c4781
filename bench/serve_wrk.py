"""`movierec serve` measured by wrk (a load generator that is not ours), one worker.

    python bench/serve_wrk.py [--seconds 10] [--runs 3] [--models ensemble_topn ease]

Starts the server from the project in the current folder (every trained model loaded,
one worker), waits for /api/health, then for each model asked for (``default``: no
``model=``, validation's pick) runs ``wrk -t2 -c16 --latency`` with bench/wrk_users.lua
(top-10 of a random known user per request) ``--runs`` times. Writes
bench/results-serve-wrk.json: requests per second and p50 / p99 milliseconds per run,
and non-2xx answers (wrk counts them).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from serve import get_json, start_server  # noqa: E402  (bench/serve.py)


def milliseconds(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def parse(out: str) -> dict:
    """Requests/sec, p50 and p99 latency and non-2xx answers from wrk's --latency report."""
    found = {"requests_per_second": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])}
    for pct in ("50", "99"):
        found[f"p{pct}_ms"] = round(milliseconds(re.search(rf"\s{pct}%\s+(\S+)", out)[1]), 2)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    found["non_2xx"] = int(bad[1]) if bad else 0
    found["errors"] = "Socket errors" in out
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--models", nargs="+", default=["default", "ease"])
    parser.add_argument("--out", default=str(HERE / "results-serve-wrk.json"))
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("serve_wrk: wrk is not installed (Debian: apt-get install wrk)")
    base = f"http://127.0.0.1:{args.port}"
    started = time.perf_counter()
    server, health = start_server(args.port, ["--workers", "1", "--watch", "0"])
    try:
        startup = time.perf_counter() - started
        while get_json(f"{base}/api/health").get("preparing"):  # blends' rows: in the background
            time.sleep(0.5)
        prepared = time.perf_counter() - started
        selected = get_json(f"{base}/api/models")["selected"].get("topn")
        results = {}
        for model in args.models:
            runs = []
            for _ in range(args.runs):
                out = subprocess.run(
                    [
                        "wrk",
                        "-t2",
                        "-c16",
                        f"-d{args.seconds}s",
                        "--latency",
                        "-s",
                        str(HERE / "wrk_users.lua"),
                        base,
                        "--",
                        str(health["users"]),
                        "" if model == "default" else model,
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                runs.append(parse(out))
            name = f"default ({selected})" if model == "default" else model
            results[name] = runs
    finally:
        server.terminate()
        server.wait(timeout=30)
    record = {
        "tool": "wrk -t2 -c16 --latency, bench/wrk_users.lua (top-10 of a random known user)",
        "dataset": health["dataset"],
        "workers": 1,
        "seconds": args.seconds,
        "startup_seconds": round(startup, 2),
        "rows_prepared_seconds": round(prepared, 2),
        "models": results,
    }
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    for name, runs in results.items():
        cells = "; ".join(
            f"{r['requests_per_second']:.0f} req/s, p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms"
            for r in runs
        )
        print(f"{name}: {cells}")


if __name__ == "__main__":
    main()
