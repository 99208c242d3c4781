"""Set repro-tolerance.yaml from measured variation instead of one flat number.

Reproduce the pipeline under a perturbation that only changes the order of
floating-point sums (another thread count), then give every metric a tolerance
of ``factor`` times the move it showed, floored at ``floor``:

    dvc exp run --temp -n threads-1 -S train.threads=1
    python bench/repro_tolerance.py threads-1            # rewrites repro-tolerance.yaml

The same measurement is what a machine with another CPU or BLAS build does to the
numbers; seed-to-seed spread is far larger and belongs to significance tests.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import yaml

HEADER = """\
# How far a fresh `dvc repro` may move a committed metric before CI fails
# (`movierec check-repro`). The same seed, thread count and machine give identical
# numbers; the slack covers other CPUs / BLAS builds. Per-metric values come from
# `python bench/repro_tolerance.py {exp}`: {factor:g} x the move under {what},
# at least {floor:g} (see the script's docstring).
"""


def measured_moves(exp: str) -> dict[str, float]:
    """``file:key`` -> |fresh - committed| for every numeric metric of ``exp`` vs HEAD."""
    out = subprocess.run(
        ["dvc", "metrics", "diff", "HEAD", exp, "--all", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    moves = {}
    for path, keys in json.loads(out.stdout or "{}").items():
        for key, change in keys.items():
            old, new = change.get("old"), change.get("new")
            if isinstance(old, int | float) and isinstance(new, int | float):
                moves[f"{path}:{key}"] = abs(float(new) - float(old))
    return moves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exp", help="experiment (or revision) reproduced under the perturbation")
    parser.add_argument("--factor", type=float, default=2.0)
    parser.add_argument("--floor", type=float, default=0.0005)
    parser.add_argument("--what", default="train.threads 2 -> 1")
    parser.add_argument("--out", default="repro-tolerance.yaml")
    args = parser.parse_args()
    moves = measured_moves(args.exp)
    tolerances = {
        name: round(max(args.floor, args.factor * move), 5) for name, move in sorted(moves.items())
    }
    body = {
        "default": 0.002,
        "ignore": ["*seconds*", "*:device", "*rss*"],
        "tolerances": tolerances,
    }
    text = HEADER.format(exp=args.exp, factor=args.factor, what=args.what, floor=args.floor)
    Path(args.out).write_text(text + yaml.safe_dump(body, sort_keys=False))
    largest = sorted(moves.items(), key=lambda kv: -kv[1])[:5]
    print(f"{len(moves)} metrics; largest moves: " + ", ".join(f"{k} {v:.5f}" for k, v in largest))


if __name__ == "__main__":
    main()
