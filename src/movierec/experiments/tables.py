"""The results tables of the README and the docs, rewritten from the committed files.

A table in a page is a marked block::

    <!-- table: leaderboard metrics/leaderboard.json -->
    ... generated, never edited by hand ...
    <!-- /table -->

``movierec docs`` rewrites every block from its file; ``movierec docs --check`` fails
(and names the block) when a page disagrees with its file, so a figure in the prose of
a page can never drift from ``metrics/`` or ``bench/``: only tables carry figures.

Kinds: ``leaderboard`` (a pipeline's ``leaderboard.json``: rating and top-N tables),
``summary`` (the same file, one row per model: the README's table), ``bench`` (a
``movierec bench`` record), ``ranking`` (``bench/ranking.py`` results), ``record`` (a flat JSON record, e.g.
``bench/serve.py``'s) and ``file``
(a committed markdown results file, its tables as written by the command that made it);
the CLI adds ``help`` (a command's ``--help``, for the CLI reference).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from movierec.errors import DataError
from movierec.evaluation.leaderboard import board_tables
from movierec.experiments.bench import table as bench_table
from movierec.store.files import reading, write_text

BLOCK = re.compile(
    r"(?P<open><!-- table: (?P<kind>[a-z]+) (?P<source>\S+) -->\n)(?P<body>.*?)(?P<close><!-- /table -->)",
    re.DOTALL,
)
PAGES = ("README.md", "docs")


def _json(path: Path) -> Any:
    with reading(path):
        return json.loads(path.read_text())


def _fmt(value: Any) -> str:
    return "—" if value is None else f"{value:.4f}"


def leaderboard(path: Path) -> str:
    rating, topn = board_tables(_json(path))
    return "\n".join([*rating, "", *topn])


def summary(path: Path) -> str:
    """One row per model: test RMSE (rating models) and the top-N figures (all)."""
    board = _json(path)
    k = board["k"]
    rmse = {r["model"]: r for r in board["rating"]}
    topn = {r["model"]: r for r in board["topn"]}
    rows = sorted(
        set(rmse) | set(topn), key=lambda m: -(topn.get(m, {}).get(f"ndcg@{k}") or 0.0)
    )
    lines = [
        f"| model | test RMSE | test NDCG@{k} | test Recall@{k} | test Hit@{k} |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in rows:
        r, t = rmse.get(name, {}), topn.get(name, {})
        lines.append(
            f"| {name} | {_fmt(r.get('rmse'))} | {_fmt(t.get(f'ndcg@{k}'))} | "
            f"{_fmt(t.get(f'recall@{k}'))} | {_fmt(t.get(f'hit@{k}'))} |"
        )
    return "\n".join(lines)


def bench(path: Path) -> str:
    return bench_table(_json(path)).rstrip("\n")


def ranking(path: Path) -> str:
    """``bench/ranking.py`` results: val selects, test reports, with the seconds (a refit's
    test marked ``*``; the run's protocol settings, under ``_protocol``, in a line below)."""
    record = _json(path)
    protocol = record.pop("_protocol", {})
    lines = [
        "| model | val NDCG@10 | test NDCG@10 | fit s | eval s |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in sorted(record.items(), key=lambda kv: -(kv[1].get("test_ndcg@10") or 0)):
        lines.append(
            f"| {name} | {_fmt(r.get('val_ndcg@10'))} | {_fmt(r.get('test_ndcg@10'))}"
            f"{'*' if r.get('refit') else ''} | "
            f"{r.get('fit_seconds', 0):.2f} | {r.get('eval_seconds', 0):.2f} |"
        )
    notes = []
    if protocol.get("refit"):
        notes.append(
            "\\* test from a copy refitted on train + val for the epochs val selected "
            "(each user's val rating is history)"
        )
    if protocol.get("overrides"):
        notes.append(
            "settings: " + ", ".join(f"`{k}={v}`" for k, v in protocol["overrides"].items())
        )
    if notes:
        lines += ["", "; ".join(notes) + "."]
    blend = record.get("ensemble_topn") or {}
    pair = (blend.get("vs_members") or {}).get(blend.get("best_member"))
    if pair:
        lines += [
            "",
            f"ensemble_topn vs {blend['best_member']} (the best member on val), test NDCG@10 "
            f"over {pair['users']:,} users: {pair['difference']:+.4f} "
            f"[{pair['ci_low']:+.4f}, {pair['ci_high']:+.4f}], Wilcoxon p = {pair['p_value']:.2g} "
            f"(Holm over the {len(blend['vs_members'])} members {pair['p_holm']:.2g}).",
        ]
    return "\n".join(lines)


def file(path: Path) -> str:
    """A committed markdown results file as written by the command that made it, less
    its title (its section headings become bold lines, so the page keeps its outline)."""
    with reading(path):
        lines = path.read_text().splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    lines = [f"**{line.lstrip('#').strip()}**" if line.startswith("#") else line for line in lines]
    return "\n".join(lines).strip("\n")


def record(path: Path) -> str:
    """A flat JSON record (a load test's figures) as a two-column table."""
    lines = ["| measure | value |", "|---|---:|"]
    for key, value in _json(path).items():
        lines.append(f"| {key.replace('_', ' ')} | {value} |")
    return "\n".join(lines)


def wrk(path: Path) -> str:
    """``bench/serve_wrk.py``'s record: each model's wrk runs, one row a run."""
    found = _json(path)
    lines = ["| model | run | requests/s | p50 ms | p99 ms | non-2xx |", "|---|---:|---:|---:|---:|---:|"]
    for name, runs in found["models"].items():
        for i, r in enumerate(runs, start=1):
            lines.append(
                f"| {name} | {i} | {r['requests_per_second']:.0f} | {r['p50_ms']} | "
                f"{r['p99_ms']} | {r['non_2xx']} |"
            )
    return "\n".join(lines)


def neighbours(path: Path) -> str:
    """``metrics/neighbours.json``: every candidate list on val (which selects, ✓) and
    test (which reports)."""
    found = _json(path)
    k = found["k"]
    hit, share, raters = f"hit@{k}", f"genre_share@{k}", f"median_raters@{k}"
    lines = [
        f"| similar movies by | val hit@{k} | val genre share@{k} | median raters | "
        f"test hit@{k} | test genre share@{k} |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, val in found["val"].items():
        test = found["test"][name]
        mark = " ✓" if name == found["selected"] else ""
        lines.append(
            f"| {name}{mark} | {val[hit]:.4f} | {val[share]:.3f} | {val[raters]:.0f} | "
            f"{test[hit]:.4f} | {test[share]:.3f} |"
        )
    return "\n".join(lines)


KINDS: dict[str, Callable[[Path], str]] = {
    "neighbours": neighbours,
    "leaderboard": leaderboard,
    "summary": summary,
    "bench": bench,
    "ranking": ranking,
    "file": file,
    "record": record,
    "wrk": wrk,
}


def pages(root: Path) -> list[Path]:
    """README.md and every page of the docs site."""
    found = []
    for name in PAGES:
        path = root / name
        found += sorted(path.rglob("*.md")) if path.is_dir() else [path] if path.exists() else []
    return found


Extra = dict[str, Callable[[str], str]]  # kinds whose source is not a file (``help``)


def render(text: str, root: Path, page: Path, extra: Extra | None = None) -> str:
    """``text`` with every table block regenerated from its source."""
    extra = extra or {}

    def fill(match: re.Match[str]) -> str:
        kind, source = match["kind"], match["source"]
        if kind in extra:
            body = extra[kind](source)
        elif kind in KINDS:
            body = KINDS[kind](root / source)
        else:
            known = ", ".join([*KINDS, *extra])
            raise DataError(f"{page}: table kind {kind!r} is unknown; known: {known}")
        return f"{match['open']}{body}\n{match['close']}"

    return BLOCK.sub(fill, text)


def stale_tables(root: Path, extra: Extra | None = None) -> tuple[list[str], int]:
    """``page: kind source`` for every block that disagrees with its file, and how many
    blocks were compared (none: there was nothing to check, which is not "all match")."""
    stale, compared = [], 0
    for page in pages(root):
        text = page.read_text()
        for match in BLOCK.finditer(text):
            compared += 1
            if render(match[0], root, page, extra) != match[0]:
                stale.append(f"{page.relative_to(root)}: {match['kind']} {match['source']}")
    return stale, compared


def rewrite_tables(root: Path, extra: Extra | None = None) -> list[str]:
    """Regenerate every block in place; the pages that changed."""
    changed = []
    for page in pages(root):
        text = page.read_text()
        fresh = render(text, root, page, extra)
        if fresh != text:
            write_text(page, fresh)
            changed.append(str(page.relative_to(root)))
    return changed
