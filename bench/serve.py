"""Load on `movierec serve`: N concurrent clients for a fixed time against 127.0.0.1.

    python bench/serve.py [--clients 16] [--seconds 20] [--model ease] [--port 8765] [--fold-in]

Starts the server from the project in the current folder (it must have run
`dvc repro`), waits for /api/health, then each client asks for the top-10 of a random
user (seeded) as fast as it can; with --fold-in each request is a new user instead: ten
random movies rated 1 to 5, posted to /api/recommendations. Prints and writes (--out, default
bench/results-serve.json) the start-up seconds, requests per second and p50 / p99
latency in milliseconds. A bounded load generator: threads and httpx, nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--model", default="ease")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--fold-in", action="store_true", help="post new users instead")
    parser.add_argument("--out", default=None, help="default bench/results-serve[-fold-in].json")
    args = parser.parse_args()

    base = f"http://127.0.0.1:{args.port}"
    t0 = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "movierec", "serve", "--port", str(args.port)],
        stdout=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                health = httpx.get(f"{base}/api/health", timeout=1.0).json()
                break
            except httpx.HTTPError:
                if server.poll() is not None:
                    raise SystemExit(
                        "serve stopped before answering; see its error above"
                    ) from None
                time.sleep(0.05)
        startup = time.perf_counter() - t0
        users = [str(u) for u in range(1, health["users"] + 1)]
        found = [
            m["movie_id"]
            for q in "aeiou"
            for m in httpx.get(f"{base}/api/movies/search", params={"q": q}).json()["movies"]
        ]
        movies = list(dict.fromkeys(found))  # the most rated titles, each once
        latencies: list[float] = []
        errors = [0]
        stop = time.perf_counter() + args.seconds
        lock = threading.Lock()

        def client(seed: int) -> None:
            rng = random.Random(seed)
            mine, bad = [], 0
            with httpx.Client(base_url=base, timeout=10.0) as http:
                while time.perf_counter() < stop:
                    s = time.perf_counter()
                    if args.fold_in:
                        rated = rng.sample(movies, 10)
                        body = {
                            "ratings": [
                                {"movie_id": m, "rating": rng.randint(1, 5)} for m in rated
                            ],
                            "k": 10,
                            "model": args.model,
                        }
                        answer = http.post("/api/recommendations", json=body)
                    else:
                        url = f"/api/users/{rng.choice(users)}/recommendations"
                        answer = http.get(url, params={"k": 10, "model": args.model})
                    mine.append(time.perf_counter() - s)
                    bad += answer.status_code != 200
            with lock:
                latencies.extend(mine)
                errors[0] += bad

        started = time.perf_counter()
        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=30)
    latencies.sort()

    def pct(q: float) -> float:
        return 1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))]

    record = {
        "dataset": health["dataset"],
        "model": args.model,
        "request": "new user, 10 ratings posted" if args.fold_in else "top-10 by user id",
        "clients": args.clients,
        "seconds": round(elapsed, 1),
        "requests": len(latencies),
        "errors": errors[0],
        "requests_per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": round(pct(0.50), 2),
        "p99_ms": round(pct(0.99), 2),
        "startup_seconds": round(startup, 2),
        "models_loaded": len(health["models"]),
        "cores": os.cpu_count(),
    }
    out = args.out or f"bench/results-serve{'-fold-in' if args.fold_in else ''}.json"
    Path(out).write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record))


if __name__ == "__main__":
    main()
