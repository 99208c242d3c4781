"""A served model damaged again and again under load: the watcher must keep serving the
last good models, report every failed reload in /api/health and take the next good file.

    python bench/watcher_soak.py [--rounds 20] [--clients 16] [--model ease] [--out FILE]

Copies what the server reads (data/processed, the served models' folders, metrics/,
params) from the project in the current folder (it must have run `dvc repro`) into a
scratch folder, serves it with `movierec serve --watch 0.2`, and while 16 clients ask
for recommendations as fast as they can, writes ``--rounds`` damaged versions of the
model's file in a row (another family's arrays, arrays of a wrong shape, a truncated
file, bytes that are no zip), waiting each time until /api/health counts the failed
reload; then puts the good file back and waits until it is taken. Prints and writes
(default bench/results-watcher-soak.json): answers by status, failures reported,
whether the good file was taken, and the server's resident memory at the start and at
its highest.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve import client, get_json, start_server  # noqa: E402  (the load generator of bench/serve.py)


def copy_project(models: list[str], into: Path) -> None:
    for part in ("params.yaml", "profiles.yaml", "data/profile.json"):
        if Path(part).exists():
            (into / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(part, into / part)
    for folder in [
        "data/processed",
        "data/neighbours",
        "metrics",
        *(f"data/models/{m}" for m in models),
    ]:
        if Path(folder).exists():
            shutil.copytree(folder, into / folder)


def damaged(kind: int, good: bytes, other: bytes, path: Path) -> None:
    """The ``kind``-th way a model file goes wrong, written over ``path``."""
    if kind == 0:
        path.write_bytes(other)
    elif kind == 1:
        with np.load(path.parent.parent.parent.parent / "good.npz") as f:
            state = {k: f[k] for k in f.files}
        big = max(state, key=lambda k: state[k].size)
        state[big] = np.ones((10, 10), dtype=state[big].dtype)
        with open(path, "wb") as handle:
            np.savez(handle, **state)
    elif kind == 2:
        path.write_bytes(good[: len(good) // 3])
    else:
        path.write_bytes(b"not a model")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--model", default="ease")
    parser.add_argument("--other", default="item_knn", help="whose file is the wrong family")
    parser.add_argument("--port", type=int, default=8767)
    parser.add_argument("--out", default="bench/results-watcher-soak.json")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    models = [args.model, args.other, "bias"]
    scratch = Path(tempfile.mkdtemp(prefix="movierec-soak-"))
    copy_project(models, scratch)
    base = f"http://127.0.0.1:{args.port}"
    server, _ = start_server(
        args.port, ["--watch", "0.2", "--models", *models], cwd=scratch, seconds=60, quiet=True
    )
    try:
        users = get_json(f"{base}/api/health")["users"]
        user_ids = [str(u) for u in range(1, min(users, 900))]
        host = f"Host: 127.0.0.1:{args.port}\r\n"
        requests = [
            f"GET /api/users/{u}/recommendations?model={args.model} HTTP/1.1\r\n{host}\r\n".encode()
            for u in user_ids
        ]
        path = scratch / "data" / "models" / args.model / "model.npz"
        good = path.read_bytes()
        shutil.copy2(path, scratch / "good.npz")  # outside the watched folders
        other = (scratch / "data" / "models" / args.other / "model.npz").read_bytes()
        peak = [0.0]
        latencies: list[float] = []
        done = threading.Event()
        report: dict = {}

        def damage() -> None:
            time.sleep(3.0)  # the clients warm the server up first: memory under load
            report["rss_start"] = rss_mib(server.pid)
            peak[0] = report["rss_start"]
            reported = get_json(f"{base}/api/health")["reloads"]["failed"]
            for round_ in range(args.rounds):
                damaged(round_ % 4, good, other, path)
                os.utime(path)
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    now = get_json(f"{base}/api/health")["reloads"]["failed"]
                    peak[0] = max(peak[0], rss_mib(server.pid))
                    if now > reported:
                        reported = now
                        break
                    time.sleep(0.05)
            path.write_bytes(good)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                health = get_json(f"{base}/api/health")
                if (health["last_reload"] or {}).get("ok"):
                    break
                time.sleep(0.05)
            report["failures_reported"] = health["reloads"]["failed"]
            report["good_file_taken"] = bool((health["last_reload"] or {}).get("ok"))
            peak[0] = max(peak[0], rss_mib(server.pid))
            done.set()

        async def load() -> int:
            async def until_done(seed: int) -> int:
                bad = 0
                while not done.is_set():
                    bad += await client(
                        seed, args.port, time.perf_counter() + 1.0, requests, latencies
                    )
                return bad

            tasks = [asyncio.create_task(until_done(s)) for s in range(args.clients)]
            return sum(await asyncio.gather(*tasks))

        started = time.perf_counter()
        worker = threading.Thread(target=damage)
        worker.start()
        errors = asyncio.run(load())
        worker.join()
        seconds = time.perf_counter() - started
        lat = np.array(latencies) * 1000
        result = {
            "rounds": args.rounds,
            "clients": args.clients,
            "model": args.model,
            "seconds": round(seconds, 1),
            "requests": len(latencies),
            "non_200": errors,
            "p50_ms": round(float(np.percentile(lat, 50)), 2),
            "p99_ms": round(float(np.percentile(lat, 99)), 2),
            "failures_reported": report["failures_reported"],
            "good_file_taken": report["good_file_taken"],
            "rss_start_mib": round(report["rss_start"], 1),
            "rss_peak_mib": round(peak[0], 1),
            "rss_ratio": round(peak[0] / report["rss_start"], 3),
            "server_alive": server.poll() is None,
        }
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(scratch, ignore_errors=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
