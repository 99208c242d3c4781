"""Load on `movierec serve`: N concurrent clients for a fixed time against 127.0.0.1.

    python bench/serve.py [--clients 16] [--seconds 20] [--model ease] [--port 8765]
                          [--workers 2] [--fold-in] [--out FILE]

Starts the server from the project in the current folder (it must have run
`dvc repro`), waits for /api/health (and the blends' prepared rows), then each client asks for the top-10 of a random
user (seeded) as fast as it can, on one kept-alive connection; with --fold-in each
request is a new user instead: ten random movies rated 1 to 5, posted to
/api/recommendations. Prints and writes (--out, default
bench/results-serve[-fold-in].json) the start-up seconds, requests per second and
p50 / p99 latency in milliseconds.

A bounded load generator in one process: asyncio streams speaking HTTP/1.1 (a request,
then its Content-Length of answer), so the clients cost the two cores little beside
the server they measure. Every answer's status is checked; any that is not 200 is
counted under "errors".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=2.0) as answer:
        return json.loads(answer.read())


def start_server(
    port: int, flags: list[str], cwd: Path | None = None, seconds: float = 120.0, quiet=False
) -> tuple[subprocess.Popen, dict]:
    """`movierec serve --port PORT FLAGS` started in ``cwd``, once /api/health answers:
    the process and that first answer (the bench scripts beside this one start it so).
    ``quiet``: its stderr too is dropped (a soak makes it print a line per failure)."""
    server = subprocess.Popen(
        [sys.executable, "-m", "movierec", "serve", "--port", str(port), *flags],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL if quiet else None,
    )
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        try:
            return server, get_json(f"http://127.0.0.1:{port}/api/health")
        except OSError:
            if server.poll() is not None:
                raise SystemExit("serve stopped before answering; see its error above") from None
            time.sleep(0.1)
    server.terminate()
    raise SystemExit(f"serve did not answer /api/health within {seconds:.0f} s")


async def client(
    seed: int, port: int, stop: float, requests: list[bytes], latencies: list[float]
) -> int:
    """Requests one after another on one connection until ``stop``; the non-200 count."""
    rng = random.Random(seed)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    bad = 0
    try:
        while time.perf_counter() < stop:
            started = time.perf_counter()
            writer.write(rng.choice(requests))
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            bad += head[9:12] != b"200"
    finally:
        writer.close()
    return bad


def build_requests(args: argparse.Namespace, users: list[str], movies: list) -> list[bytes]:
    """Every request a client may send, encoded once (seeded): 4,096 of them."""
    rng = random.Random(0)
    host = f"Host: 127.0.0.1:{args.port}\r\n"
    out = []
    for _ in range(4096):
        if args.fold_in:
            body = json.dumps(
                {
                    "ratings": [
                        {"movie_id": m, "rating": rng.randint(1, 5)}
                        for m in rng.sample(movies, 10)
                    ],
                    "k": 10,
                    "model": args.model,
                }
            ).encode()
            head = (
                f"POST /api/recommendations HTTP/1.1\r\n{host}"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            out.append(head.encode() + body)
        else:
            path = f"/api/users/{rng.choice(users)}/recommendations?k=10&model={args.model}"
            out.append(f"GET {path} HTTP/1.1\r\n{host}\r\n".encode())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--model", default="ease")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--workers", type=int, default=2, help="server processes (default 2)")
    parser.add_argument("--models", nargs="+", help="what the server loads (default: all)")
    parser.add_argument("--fold-in", action="store_true", help="post new users instead")
    parser.add_argument("--out", default=None, help="default bench/results-serve[-fold-in].json")
    args = parser.parse_args()

    base = f"http://127.0.0.1:{args.port}"
    command = [sys.executable, "-m", "movierec", "serve", "--port", str(args.port)]
    command += ["--workers", str(args.workers)] + (["--models", *args.models] if args.models else [])
    t0 = time.perf_counter()
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        while True:
            try:
                health = get_json(f"{base}/api/health")
                break
            except OSError:
                if server.poll() is not None:
                    raise SystemExit("serve stopped before answering; see its error above") from None
                time.sleep(0.05)
        startup = time.perf_counter() - t0
        time.sleep(3.0 if args.workers > 1 else 0.0)  # the other workers load too
        ready_by = time.perf_counter() + 180  # the blends prepare their rows after start
        while get_json(f"{base}/api/health").get("preparing") and time.perf_counter() < ready_by:
            time.sleep(0.5)
        users = [str(u) for u in range(1, health["users"] + 1)]
        found = [
            m["movie_id"]
            for q in "aeiou"
            for m in get_json(f"{base}/api/movies/search?q={q}")["movies"]
        ]
        movies = list(dict.fromkeys(found))  # the most rated titles, each once
        requests = build_requests(args, users, movies)
        latencies: list[float] = []

        async def run() -> int:
            stop = time.perf_counter() + args.seconds
            bad = await asyncio.gather(
                *(client(i, args.port, stop, requests, latencies) for i in range(args.clients))
            )
            return sum(bad)

        started = time.perf_counter()
        errors = asyncio.run(run())
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
        "workers": args.workers,
        "seconds": round(elapsed, 1),
        "requests": len(latencies),
        "errors": errors,
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
