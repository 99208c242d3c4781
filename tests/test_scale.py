"""`movierec bench --scale`: MovieLens-shaped sizes, every stage timed, refusals recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from movierec.cli import main
from movierec.config import ConfigError
from movierec.scale import parse_sizes, shape

ROOT = Path(__file__).resolve().parents[1]


def test_shapes_are_movielens_at_1m_and_25m():
    assert shape(1_000_209) == (6_040, 3_706)
    users, movies = shape(25_000_095)
    assert abs(users - 162_541) <= 2 and abs(movies - 62_423) <= 2


@given(st.integers(100, 30_000_000))
def test_every_size_fits_the_generator_and_grows(n):
    users, movies = shape(n)
    assert n <= users * movies // 2  # the synthetic generator needs a half-empty grid
    bigger = shape(n * 2)
    assert bigger[0] >= users and bigger[1] >= movies


def test_sizes_parse_and_bad_ones_are_one_line():
    assert parse_sizes("1M, 100k,2.5M,100k") == [100_000, 1_000_000, 2_500_000]
    with pytest.raises(ConfigError, match=r"--sizes: '1G' is not a size"):
        parse_sizes("100k,1G")
    with pytest.raises(ConfigError, match="too small"):
        parse_sizes("10")


def test_scale_times_every_stage_and_records_refusals(tmp_path, monkeypatch, capsys):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["models"]["mf_bias"]["epochs"] = 2
    params["models"]["ease"]["dense_max_items"] = 100  # the sparse variant past 100 movies
    params["models"]["mf"] |= {"lr": 1e30, "epochs": 1}  # diverges: refused at every size
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    profile = {"tiny": {"models": {"mf_bias": {"epochs": 1, "patience": 1}}}}
    (tmp_path / "profiles.yaml").write_text(yaml.safe_dump(profile))
    monkeypatch.chdir(tmp_path)
    main(
        ["bench", "--scale", "--sizes", "1500,6000", "--profile", "tiny"]
        + ["--models", "bias", "mf_bias", "ease", "mf"]
    )

    record = json.loads((tmp_path / "metrics" / "scale.json").read_text())
    assert [s["ratings"] for s in record["sizes"]] == [1500, 6000]
    rows = {(r["ratings"], r["family"], r["stage"]): r for r in record["rows"]}
    for n in (1500, 6000):
        assert rows[(n, "preprocess", "preprocess")]["peak_rss_mib"] > 0
        for family in ("bias", "mf_bias"):
            for stage in ("train", "evaluate"):
                row = rows[(n, family, stage)]
                assert row["status"] == "ok" and row["seconds"] >= 0 and row["peak_rss_mib"] > 0
    assert record["profile"] == "tiny"  # the profile reaches every size
    assert all(rows[(n, "mf_bias", "train")]["epochs"] == 1 for n in (1500, 6000))
    assert rows[(6000, "mf_bias", "evaluate")]["test_rmse"] > 0
    movies = {s["ratings"]: s["movies"] for s in record["sizes"]}
    for n in (1500, 6000):
        assert rows[(n, "ease", "train")]["status"] == "ok"  # dense, then sparse
        refused = rows[(n, "mf", "train")]
        assert refused["seconds"] is None and "lower the learning rate" in refused["status"]
    assert any(movies[n] > 100 for n in movies)

    csv = (tmp_path / "metrics" / "scale.csv").read_text().splitlines()
    assert csv[0] == "ratings,users,movies,family,stage,seconds,peak_rss_mib"
    assert len(csv) - 1 == sum(r["seconds"] is not None for r in record["rows"])
    table = (tmp_path / "metrics" / "scale.md").read_text()
    assert "| mf | train |" in table and "refused:" in table
    assert "| preprocess | preprocess |" in capsys.readouterr().out
