"""The README's and the docs' results tables are generated from committed files, and a
page that disagrees with its file fails."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from movierec.cli import _help_text
from movierec.errors import DataError
from movierec.experiments.tables import pages, rewrite_tables, stale_tables, summary

ROOT = Path(__file__).resolve().parents[2]
EXTRA = {"help": _help_text}

BOARD = {
    "k": 10,
    "selected": {"rating": "mf", "topn": "ease"},
    "rating": [{"model": "mf", "rmse": 0.91234, "mae": 0.7, "val_rmse": 0.92, "rmse_rounded": 0.95}],
    "topn": [
        {"model": "mf", "ndcg@10": 0.1, "recall@10": 0.2, "hit@10": 0.3},
        {"model": "ease", "ndcg@10": 0.34567, "recall@10": 0.4, "hit@10": 0.8},
    ],
}


def _project(tmp_path: Path, page: str) -> Path:
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "leaderboard.json").write_text(json.dumps(BOARD))
    (tmp_path / "README.md").write_text(page)
    return tmp_path


def test_every_committed_table_matches_its_file():
    assert pages(ROOT), "README.md and docs/ hold the tables"
    assert stale_tables(ROOT, EXTRA)[0] == []


def test_summary_rows_by_hand(tmp_path):
    path = tmp_path / "leaderboard.json"
    path.write_text(json.dumps(BOARD))
    text = summary(path)
    assert text.splitlines()[2:] == [
        "| ease | — | 0.3457 | 0.4000 | 0.8000 |",
        "| mf | 0.9123 | 0.1000 | 0.2000 | 0.3000 |",
    ]


def test_ranking_table_states_the_blend_against_its_best_member(tmp_path):
    from movierec.experiments.tables import ranking

    pair = {"difference": 0.0123, "ci_low": 0.0101, "ci_high": 0.0146, "p_value": 1.2e-24,
            "p_holm": 2.4e-24, "users": 5898}
    record = {
        "ease": {"val_ndcg@10": 0.24, "test_ndcg@10": 0.3069, "fit_seconds": 2, "eval_seconds": 1},
        "ensemble_topn": {"val_ndcg@10": 0.25, "test_ndcg@10": 0.3192, "best_member": "ease",
                          "vs_members": {"ease": pair, "pop": pair}},
    }
    (tmp_path / "r.json").write_text(json.dumps(record))
    table = ranking(tmp_path / "r.json").splitlines()
    assert table[2].startswith("| ensemble_topn | 0.2500 | 0.3192 |")
    assert table[-1] == (
        "ensemble_topn vs ease (the best member on val), test NDCG@10 over 5,898 users: "
        "+0.0123 [+0.0101, +0.0146], Wilcoxon p = 1.2e-24 (Holm over the 2 members 2.4e-24)."
    )


def test_ranking_table_marks_refitted_tests_and_states_the_settings(tmp_path):
    from movierec.experiments.tables import ranking

    record = {
        "_protocol": {"refit": True, "overrides": {"models.sasrec.dropout": 0.2}},
        "sasrec": {"val_ndcg@10": 0.11, "test_ndcg@10": 0.12, "refit": True},
        "pop": {"val_ndcg@10": 0.05, "test_ndcg@10": 0.06},
    }
    (tmp_path / "r.json").write_text(json.dumps(record))
    table = ranking(tmp_path / "r.json").splitlines()
    assert table[2].startswith("| sasrec | 0.1100 | 0.1200* |")
    assert table[3].startswith("| pop | 0.0500 | 0.0600 |")
    assert table[-1].startswith("\\* test from a copy refitted on train + val")
    assert table[-1].endswith("settings: `models.sasrec.dropout=0.2`.")


def test_a_hand_edited_figure_is_stale_until_rewritten(tmp_path):
    page = "intro\n\n<!-- table: summary metrics/leaderboard.json -->\n<!-- /table -->\n\nafter\n"
    root = _project(tmp_path, page)
    assert stale_tables(root)[0] == ["README.md: summary metrics/leaderboard.json"]
    assert rewrite_tables(root) == ["README.md"]
    assert stale_tables(root)[0] == []
    text = (root / "README.md").read_text()
    assert text.startswith("intro\n") and text.endswith("\nafter\n") and "| ease | — | 0.3457 |" in text
    (root / "README.md").write_text(text.replace("0.3457", "0.3500"))  # typed by hand
    assert stale_tables(root)[0] == ["README.md: summary metrics/leaderboard.json"]
    board = BOARD | {"topn": [BOARD["topn"][0] | {"ndcg@10": 0.5}, BOARD["topn"][1]]}
    (root / "metrics" / "leaderboard.json").write_text(json.dumps(board))  # a new run
    rewrite_tables(root)
    assert "| mf | 0.9123 | 0.5000 |" in (root / "README.md").read_text()


def test_unknown_kind_and_missing_file_are_one_line(tmp_path):
    root = _project(tmp_path, "<!-- table: chart metrics/leaderboard.json -->\n<!-- /table -->\n")
    with pytest.raises(DataError, match="README.md: table kind 'chart' is unknown"):
        stale_tables(root)
    (root / "README.md").write_text("<!-- table: bench bench/none.json -->\n<!-- /table -->\n")
    with pytest.raises(DataError, match="bench/none.json: missing"):
        stale_tables(root)


def test_docs_check_fails_the_command_on_a_stale_page(tmp_path):
    root = tmp_path / "project"
    root.mkdir()
    shutil.copytree(ROOT / "metrics", root / "metrics")
    shutil.copytree(ROOT / "bench", root / "bench")
    shutil.copytree(ROOT / "docs", root / "docs")
    readme = (ROOT / "README.md").read_text()
    (root / "README.md").write_text(readme)
    ok = subprocess.run(
        [sys.executable, "-m", "movierec", "docs", "--check"], cwd=root, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    start = readme.index("<!-- table: summary")
    row = readme.index("| ease |", start)
    (root / "README.md").write_text(readme[:row] + readme[row:].replace("0.", "0.9", 1))
    bad = subprocess.run(
        [sys.executable, "-m", "movierec", "docs", "--check"], cwd=root, capture_output=True, text=True
    )
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == [
        "error: 1 table(s) disagree with their files (README.md: summary metrics/leaderboard.json, ...): "
        "run `movierec docs` and commit the pages"
    ]


def test_the_readme_stays_short_and_points_into_the_docs():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    linked = set(re.findall(r"\]\((docs/[^)#]+)", readme))
    assert linked and all((ROOT / link).is_file() for link in linked)
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in (ROOT / "docs").rglob("*.md"):
        assert page.relative_to(ROOT / "docs").as_posix() in nav, f"{page} is not in the site's nav"
