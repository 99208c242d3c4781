"""Every native layout, written by the synthetic generator and parsed back."""

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from movierec.data.parse import parse_release
from movierec.data.synthetic import write_custom, write_native
from movierec.errors import DataError

NATIVE = ["ml-100k", "ml-1m", "ml-10m", "ml-20m", "ml-25m", "ml-32m", "ml-latest-small"]


@pytest.mark.parametrize("release", NATIVE)
def test_native_layout_round_trip(tiny, tmp_path: Path, release: str):
    write_native(tiny, release, tmp_path)
    raw = parse_release(tmp_path, release)
    want = tiny.ratings
    assert raw.ratings.height == want.height
    assert raw.ratings["user_id"].to_list() == want["user_id"].to_list()
    assert raw.ratings["item_id"].to_list() == want["item_id"].to_list()
    assert raw.ratings["timestamp"].to_list() == want["timestamp"].to_list()
    got = raw.ratings["rating"].to_numpy()
    if release in ("ml-100k", "ml-1m"):  # integer-star releases
        assert np.array_equal(got, np.clip(np.round(want["rating"].to_numpy()), 1, 5))
    else:
        assert np.allclose(got, want["rating"].to_numpy())
    items = raw.items.sort("item_id")
    assert items["title"].to_list() == tiny.items["title"].to_list()
    assert items["year"].to_list() == tiny.items["year"].to_list()
    assert [sorted(g) for g in items["genres"].to_list()] == [
        sorted(g) for g in tiny.items["genres"]
    ]
    if release in ("ml-100k", "ml-1m"):
        assert raw.users is not None
        assert raw.users.height == tiny.users.height
        assert {"gender", "age", "occupation", "zip"} <= set(raw.users.columns)
    else:
        assert raw.users is None


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_custom_layout(tiny, tmp_path: Path, fmt: str):
    write_custom(tiny, tmp_path, fmt)
    raw = parse_release(tmp_path, "custom")
    assert raw.ratings.height == tiny.ratings.height
    assert raw.has_timestamps
    assert raw.users is not None and raw.users.height == tiny.users.height


def test_custom_without_timestamps_or_items(tmp_path: Path):
    pl.DataFrame({"user_id": [1, 1, 2], "item_id": [5, 6, 5], "rating": [4, 3, 5]}).write_csv(
        tmp_path / "ratings.csv"
    )
    raw = parse_release(tmp_path, "custom")
    assert not raw.has_timestamps
    assert raw.items.height == 0 and raw.users is None


# ------------------------------------------------------------------ malformed input


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def _ml100k(tiny, tmp_path: Path) -> Path:
    write_native(tiny, "ml-100k", tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("1\t2\t3", "line 3: expected 4 fields, found 3"),
        ("x1\t2\t3\t881250949", "line 3: user_id 'x1' is not a number"),
        ("1\t2\t7\t881250949", "line 3: rating 7 is off the 0.5..5 scale"),
        ("1\t2\t0\t881250949", "line 3: rating 0 is off"),
    ],
)
def test_malformed_ratings_line(tiny, tmp_path: Path, line: str, message: str):
    folder = _ml100k(tiny, tmp_path)
    lines = (folder / "u.data").read_text().splitlines()
    lines[2] = line
    _write(folder / "u.data", "\n".join(lines) + "\n")
    with pytest.raises(DataError) as err:
        parse_release(folder, "ml-100k")
    assert "u.data" in str(err.value) and message in str(err.value)


def test_wrong_encoding(tiny, tmp_path: Path):
    write_native(tiny, "ml-latest-small", tmp_path)
    data = (
        (tmp_path / "movies.csv")
        .read_bytes()
        .replace(b"Synthetic Movie 3 ", b"Synth\xe9tic Movie 3 ")
    )
    (tmp_path / "movies.csv").write_bytes(data)
    with pytest.raises(DataError, match=r"movies.csv: line 4: not valid utf-8"):
        parse_release(tmp_path, "ml-latest-small")


def test_missing_member_file(tiny, tmp_path: Path):
    write_native(tiny, "ml-1m", tmp_path)
    (tmp_path / "users.dat").unlink()
    with pytest.raises(DataError, match=r"users.dat: missing"):
        parse_release(tmp_path, "ml-1m")


def test_dat_field_count(tiny, tmp_path: Path):
    write_native(tiny, "ml-1m", tmp_path)
    _write(tmp_path / "ratings.dat", "1::2::3::4\n1::3::4\n")
    with pytest.raises(DataError, match=r"ratings.dat: line 2: expected 4 fields, found 3"):
        parse_release(tmp_path, "ml-1m")


def test_custom_missing_columns(tmp_path: Path):
    pl.DataFrame({"user": [1], "movie": [2], "rating": [3]}).write_csv(tmp_path / "ratings.csv")
    with pytest.raises(DataError, match=r"ratings.csv: missing column\(s\) user_id, item_id"):
        parse_release(tmp_path, "custom")


def test_custom_rating_off_scale(tmp_path: Path):
    pl.DataFrame({"user_id": [1, 2], "item_id": [2, 3], "rating": [3, 10]}).write_csv(
        tmp_path / "ratings.csv"
    )
    with pytest.raises(DataError, match=r"ratings.csv: line 3: rating 10 is off"):
        parse_release(tmp_path, "custom")


def test_empty_ratings_file(tmp_path: Path):
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n")
    (tmp_path / "movies.csv").write_text("movieId,title,genres\n")
    with pytest.raises(DataError, match="holds no ratings"):
        parse_release(tmp_path, "ml-20m")
