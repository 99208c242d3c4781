"""Parse each release's native files into canonical polars frames.

This is the only module that knows file formats. Every parser returns
:class:`RawData`: ``ratings`` (user_id, item_id, rating, timestamp), ``items``
(item_id, title, genres, year) and, where the release has them, ``users``
(user_id plus demographics). Malformed input raises :class:`DataError` naming the
file and line.
"""

from __future__ import annotations

import csv
import io
import sys
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from movierec.data.manifest import source_of, verify_manifest
from movierec.data.releases import RELEASES
from movierec.errors import DataError

RATING_MIN, RATING_MAX = 0.5, 5.0
_YEAR = r"\((\d{4})\)\s*$"


@dataclass
class RawData:
    """A data set as parsed, before reindexing and splitting."""

    ratings: pl.DataFrame
    items: pl.DataFrame
    users: pl.DataFrame | None
    has_timestamps: bool


# --------------------------------------------------------------------------- helpers


def _read_text(path: Path, encoding: str) -> str:
    data = path.read_bytes()
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DataError(
            f"{path}: line {line}: not valid {encoding} text ({err.reason}); "
            "the file is corrupt or saved in another encoding"
        ) from None


def _first_bad_line(
    text: str, sep: str, n_fields: int, numeric: dict[int, str], header: bool
) -> str | None:
    """Slow path, only after the fast reader failed: find the first malformed line."""
    for lineno, line in enumerate(text.splitlines(), start=1):
        if header and lineno == 1 or not line.strip():
            continue
        fields = line.split(sep) if sep != "," else next(csv.reader([line]))
        if len(fields) != n_fields:
            return f"line {lineno}: expected {n_fields} fields, found {len(fields)}: {line[:80]!r}"
        for index, name in numeric.items():
            try:
                float(fields[index])
            except ValueError:
                if not fields[index].strip():
                    return f"line {lineno}: empty {name} field"
                return f"line {lineno}: {name} {fields[index]!r} is not a number"
    return None


def _read_table(
    path: Path,
    *,
    sep: str,
    names: list[str],
    dtypes: dict[str, pl.DataType],
    encoding: str = "utf-8",
    header: bool = False,
    required: list[str] | None = None,
) -> pl.DataFrame:
    """Read a delimited file with a fixed column list; multi-char separators allowed."""
    if not path.is_file():
        raise DataError(
            f"{path}: missing; the raw data folder is incomplete (re-run `dvc repro download`)"
        )
    text = _read_text(path, encoding)
    body = text.replace(sep, "\x1f") if len(sep) > 1 else text
    single = "\x1f" if len(sep) > 1 else sep
    schema = {n: dtypes.get(n, pl.String) for n in names}
    try:
        frame = pl.read_csv(
            io.StringIO(body) if body else io.StringIO(""),
            separator=single,
            has_header=header,
            new_columns=names if not header else None,
            schema=schema,
            quote_char='"' if sep == "," else None,
            truncate_ragged_lines=False,
        )
    except Exception as err:  # polars raises several error types for bad rows
        raise _malformed(
            path, text, sep, names, dtypes, header, f"could not be parsed ({err})"
        ) from None
    required = [n for n in (names if required is None else required)]
    if required and frame.select(pl.any_horizontal(pl.col(required).is_null()).any()).item():
        raise _malformed(path, text, sep, names, dtypes, header, "has an empty field")
    return frame


def _malformed(path, text, sep, names, dtypes, header, fallback) -> DataError:
    numeric = {i: n for i, n in enumerate(names) if dtypes.get(n) not in (None, pl.String)}
    where = _first_bad_line(text, sep, len(names), numeric, header)
    return DataError(f"{path}: {where or fallback}; fix or re-download the file")


def _check_ratings(frame: pl.DataFrame, path: Path, header: bool) -> pl.DataFrame:
    """Reject nulls and ratings off the scale, naming the first bad line."""
    offset = 2 if header else 1
    bad = frame.with_row_index("_row").filter(
        pl.any_horizontal(pl.col("user_id", "item_id", "rating").is_null())
        | ~pl.col("rating").is_between(RATING_MIN, RATING_MAX)
        | ~pl.col("rating").is_finite()
    )
    if bad.height:
        row = bad.row(0, named=True)
        line = row["_row"] + offset
        if row["rating"] is None or row["user_id"] is None or row["item_id"] is None:
            raise DataError(f"{path}: line {line}: empty user, item or rating field")
        raise DataError(
            f"{path}: line {line}: rating {row['rating']:g} is off the {RATING_MIN:g}..{RATING_MAX:g} scale"
        )
    if frame.height == 0:
        raise DataError(f"{path}: holds no ratings")
    return frame


def _with_year(items: pl.DataFrame) -> pl.DataFrame:
    return items.with_columns(
        pl.col("title")
        .str.strip_chars()
        .str.extract(_YEAR, 1)
        .cast(pl.Int32, strict=False)
        .alias("year")
    )


def _split_genres(col: str = "genres") -> pl.Expr:
    return (
        pl.col(col)
        .fill_null("")
        .str.split("|")
        .list.eval(
            pl.element().filter((pl.element() != "") & (pl.element() != "(no genres listed)"))
        )
    )


def _read_ratings(
    path: Path,
    sep: str,
    header: bool = False,
    names: tuple[str, ...] | list[str] = ("user_id", "item_id", "rating", "timestamp"),
) -> pl.DataFrame:
    """A release's ratings file as user_id, item_id, rating, timestamp, checked line by line."""
    types = (pl.Int64, pl.Int64, pl.Float32, pl.Int64)
    frame = _read_table(
        path, sep=sep, header=header, names=list(names), dtypes=dict(zip(names, types, strict=True))
    )
    frame = frame.rename(
        dict(zip(names, ("user_id", "item_id", "rating", "timestamp"), strict=True))
    )
    return _check_ratings(frame, path, header=header)


# --------------------------------------------------------------------------- layouts


def parse_100k(folder: Path) -> RawData:
    rel = RELEASES["ml-100k"]
    ratings = _read_ratings(folder / "u.data", sep="\t")
    genre_table = _read_table(
        folder / "u.genre",
        sep="|",
        names=["genre", "index"],
        dtypes={"index": pl.Int64},
        required=[],
    ).drop_nulls()
    genre_names = genre_table.sort("index")["genre"].to_list()
    names = ["item_id", "title", "release", "video", "url"] + [
        f"g{k}" for k in range(len(genre_names))
    ]
    raw_items = _read_table(
        folder / "u.item",
        sep="|",
        names=names,
        dtypes={"item_id": pl.Int64},
        encoding=rel.encoding,
        required=["item_id", "title"],
    )
    flags = [pl.when(pl.col(f"g{k}") == "1").then(pl.lit(g)) for k, g in enumerate(genre_names)]
    items = raw_items.select(
        "item_id",
        "title",
        pl.concat_list(flags)
        .list.drop_nulls()
        .list.eval(pl.element().filter(pl.element() != "unknown"))
        .alias("genres"),
    )
    users = _read_table(
        folder / "u.user",
        sep="|",
        names=["user_id", "age", "gender", "occupation", "zip"],
        dtypes={"user_id": pl.Int64, "age": pl.Int32},
    ).select("user_id", "gender", "age", "occupation", "zip")
    return RawData(ratings, _with_year(items), users, has_timestamps=True)


def parse_dat(folder: Path, release: str) -> RawData:
    rel = RELEASES[release]
    ratings = _read_ratings(folder / "ratings.dat", sep="::")
    items = _read_table(
        folder / "movies.dat",
        sep="::",
        names=["item_id", "title", "genres"],
        dtypes={"item_id": pl.Int64},
        encoding=rel.encoding,
        required=["item_id", "title"],
    )
    items = items.with_columns(_split_genres())
    users = None
    if rel.has_demographics:
        users = _read_table(
            folder / "users.dat",
            sep="::",
            names=["user_id", "gender", "age", "occupation", "zip"],
            dtypes={"user_id": pl.Int64, "age": pl.Int32},
        )
    return RawData(ratings, _with_year(items), users, has_timestamps=True)


def parse_csv_release(folder: Path) -> RawData:
    ratings = _read_ratings(
        folder / "ratings.csv",
        sep=",",
        header=True,
        names=["userId", "movieId", "rating", "timestamp"],
    )
    items = _read_table(
        folder / "movies.csv",
        sep=",",
        header=True,
        names=["movieId", "title", "genres"],
        dtypes={"movieId": pl.Int64},
        required=["movieId", "title"],
    ).rename({"movieId": "item_id"})
    return RawData(
        ratings, _with_year(items.with_columns(_split_genres())), None, has_timestamps=True
    )


def _one_line(err: Exception) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= 160 else text[:157] + "..."


_TEXT_FIRST = ("user_id", "item_id", "rating", "timestamp")


def _read_any(path: Path) -> pl.DataFrame:
    """A custom CSV or parquet file. In a CSV the id, rating and timestamp columns are read
    as text and typed here, so a bad value is reported with its line number."""
    try:
        if path.suffix == ".parquet":
            return pl.read_parquet(path)
        header = pl.read_csv(path, n_rows=0).columns
        text = {c: pl.String for c in _TEXT_FIRST if c in header}
        return pl.read_csv(path, schema_overrides=text, infer_schema_length=10_000)
    except Exception as err:
        raise DataError(
            f"{path}: could not be read as {path.suffix[1:]} ({_one_line(err)})"
        ) from None


def _line(path: Path, row: int) -> str:
    return f"line {row + 2}" if path.suffix == ".csv" else f"row {row + 1}"


def _ids(frame: pl.DataFrame, column: str, path: Path) -> pl.DataFrame:
    """Ids as integers when every value is one, else as text; float ids must be whole."""
    col = frame[column]
    if col.dtype.is_float():
        whole = col.is_null() | (col == col.round(0))
        if not whole.all():
            row = int(whole.arg_min())
            raise DataError(
                f"{path}: {column} must be whole numbers or text ids; {_line(path, row)} has "
                f"{col[row]!r}"
            )
        return frame.with_columns(col.cast(pl.Int64))
    if col.dtype == pl.String:
        stripped = col.str.strip_chars()
        as_int = stripped.cast(pl.Int64, strict=False)
        failed = as_int.is_null() & col.is_not_null()
        if not failed.any():
            return frame.with_columns(as_int.alias(column))
        if 2 * failed.sum() < col.is_not_null().sum():  # mostly numbers: the rest are typos
            row = int(failed.arg_max())
            raise DataError(
                f"{path}: {_line(path, row)}: {column} {col[row]!r} is not a number, while "
                f"{col.is_not_null().sum() - failed.sum():,} of the {col.is_not_null().sum():,} "
                "ids are; fix the line (or make every id text)"
            )
        # Text ids (a few numeric ones among them are text too), normalised as numeric
        # ids are: surrounding spaces are not part of an id.
        _warn_merged(col, stripped, column, path)
        return frame.with_columns(stripped.alias(column))
    return frame


def _warn_merged(raw: pl.Series, stripped: pl.Series, column: str, path: Path) -> None:
    """One warning line when stripping spaces made two spellings one id (``"u196 "``
    and ``"u196"``), so the user knows their file had both."""
    spelled = pl.DataFrame({"raw": raw, "id": stripped}).drop_nulls().unique()
    merged = spelled.filter(pl.col("id").is_duplicated())
    if merged.height:
        ids = merged["id"].unique(maintain_order=True)
        example = ", ".join(
            repr(s) for s in merged.filter(pl.col("id") == ids[0])["raw"].sort().to_list()[:2]
        )
        print(
            f"warning: {path}: {ids.len():,} {column} value(s) were written with and without "
            f"surrounding spaces (e.g. {example}); each is read as one id",
            file=sys.stderr,
        )


def _numeric(frame: pl.DataFrame, column: str, dtype: pl.DataType, path: Path) -> pl.Series:
    """``column`` cast to ``dtype``; the first value that is not a number is named by line."""
    col = frame[column]
    text = col.str.strip_chars() if col.dtype == pl.String else col
    if dtype.is_integer():
        # A whole number written as a float (``881250949.0``, as spreadsheets export
        # timestamps) is that number; a fraction is named below.
        wide = text.cast(pl.Float64, strict=False)
        whole = wide.is_null() | (wide == wide.round(0))
        if not whole.all():
            row = int(whole.arg_min())
            raise DataError(
                f"{path}: {_line(path, row)}: {column} {col[row]!r} is not a whole number"
            )
        out = text.cast(dtype, strict=False).fill_null(wide.cast(dtype, strict=False))
    else:
        out = text.cast(dtype, strict=False)
    bad = out.is_null() & col.is_not_null() & (text.cast(pl.String) != "")
    if bad.any():
        row = int(bad.arg_max())
        raise DataError(f"{path}: {_line(path, row)}: {column} {col[row]!r} is not a number")
    return out


def _unique_ids(frame: pl.DataFrame, column: str, path: Path) -> None:
    """One row per id: a repeated id would shift every later title or profile."""
    dup = frame.with_row_index("_row").filter(pl.col(column).is_duplicated())
    if dup.height:
        first = dup[column][0]
        rows = dup.filter(pl.col(column) == first)["_row"].to_list()[:2]
        where = " and ".join(_line(path, r).split()[-1] for r in rows)
        kind = "lines" if path.suffix == ".csv" else "rows"
        raise DataError(
            f"{path}: {column} {first} appears more than once ({kind} {where}); keep one row per id"
        )


def _matching_ids(frame: pl.DataFrame, column: str, dtype: pl.DataType, path: Path) -> pl.Series:
    """The id column in the ratings' id type; a value that does not fit is named by line."""
    col = frame[column]
    out = col.cast(dtype, strict=False)
    bad = out.is_null() & col.is_not_null()
    if bad.any():
        row = int(bad.arg_max())
        raise DataError(
            f"{path}: {_line(path, row)}: {column} {col[row]!r} does not match the ratings' "
            f"ids ({dtype}); use the same ids as the ratings file"
        )
    return out


def _find(folder: Path, role: str) -> Path | None:
    for suffix in (".parquet", ".csv"):
        if (folder / f"{role}{suffix}").is_file():
            return folder / f"{role}{suffix}"
    return None


def _require(frame: pl.DataFrame, path: Path, needed: list[str]) -> None:
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)}; a custom {path.stem} file needs "
            f"{', '.join(needed)} (found {', '.join(frame.columns)})"
        )


def parse_custom(folder: Path) -> RawData:
    path = _find(folder, "ratings")
    if path is None:
        raise DataError(f"{folder}: no ratings.csv or ratings.parquet (set data.custom.ratings)")
    frame = _read_any(path)
    _require(frame, path, ["user_id", "item_id", "rating"])
    frame = _ids(_ids(frame, "user_id", path), "item_id", path)
    has_ts = "timestamp" in frame.columns and frame["timestamp"].null_count() < frame.height
    if has_ts and frame["timestamp"].dtype == pl.String:
        has_ts = bool((frame["timestamp"].str.strip_chars() != "").any())
    ratings = pl.DataFrame(
        {
            "user_id": frame["user_id"],
            "item_id": frame["item_id"],
            "rating": _numeric(frame, "rating", pl.Float32, path),
            "timestamp": _numeric(frame, "timestamp", pl.Int64, path)
            if has_ts
            else pl.Series("timestamp", [None] * frame.height, dtype=pl.Int64),
        }
    )
    ratings = _check_ratings(ratings, path, header=path.suffix == ".csv")

    item_path = _find(folder, "items")
    if item_path is not None:
        items = _read_any(item_path)
        _require(items, item_path, ["item_id", "title"])
        items = items.with_columns(
            _matching_ids(
                _ids(items, "item_id", item_path), "item_id", ratings["item_id"].dtype, item_path
            )
        )
        _unique_ids(items, "item_id", item_path)
        genres = (
            _split_genres()
            if "genres" in items.columns and items["genres"].dtype == pl.String
            else (
                pl.col("genres")
                if "genres" in items.columns
                else pl.lit([], dtype=pl.List(pl.String)).alias("genres")
            )
        )
        items = items.select(
            pl.col("item_id").cast(ratings["item_id"].dtype),
            pl.col("title").cast(pl.String),
            genres,
        )
    else:
        items = pl.DataFrame(
            schema={
                "item_id": ratings["item_id"].dtype,
                "title": pl.String,
                "genres": pl.List(pl.String),
            }
        )
    users = None
    user_path = _find(folder, "users")
    if user_path is not None:
        users = _read_any(user_path)
        _require(users, user_path, ["user_id"])
        users = users.with_columns(
            _matching_ids(
                _ids(users, "user_id", user_path), "user_id", ratings["user_id"].dtype, user_path
            )
        )
        _unique_ids(users, "user_id", user_path)
    return RawData(ratings, _with_year(items), users, has_timestamps=has_ts)


def parse_release(folder: Path, dataset: str) -> RawData:
    """Parse ``folder`` (the download stage's output) for data set ``dataset``, after checking
    its files against the download stage's ``MANIFEST.json`` (when there is one)."""
    manifest = verify_manifest(folder)
    if dataset in ("custom", "synthetic"):
        try:
            return parse_custom(folder)
        except DataError as err:
            message = source_of(folder, str(err))
            if message != str(err):  # name the user's own file, and how to bring the fix in
                message += "; after fixing it, run `dvc repro` again"
            raise DataError(message) from None
    release = RELEASES[dataset]
    if release.layout == "ml-100k":
        raw = parse_100k(folder)
    elif release.layout == "dat":
        raw = parse_dat(folder, dataset)
    else:
        raw = parse_csv_release(folder)
    official = manifest is not None and manifest.get("release") == dataset
    if official and release.n_ratings is not None and raw.ratings.height != release.n_ratings:
        raise DataError(
            f"{folder}: {raw.ratings.height:,} ratings, but the official {dataset} has "
            f"{release.n_ratings:,}; the copy it came from ({manifest.get('source', '?')}) is "
            "not the release: point data.mirror / MOVIELENS_MIRROR at a real copy"
        )
    return raw


def read_official_fold(folder: Path, dataset: str, fold: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(base, test)`` (user_id, item_id) pairs of one of the release's official folds.

    The files are the release's own (``u1.base`` / ``u1.test`` ...), checked like
    ``u.data``, so the official split is reproduced exactly, not re-drawn.
    """
    release = RELEASES.get(dataset)
    if release is None or not release.folds:
        shipped = [name for name, r in RELEASES.items() if r.folds]
        raise DataError(
            f"params.yaml: data.split.strategy is official, but {dataset} ships no official "
            f"folds (only {', '.join(shipped)} does); use holdout, random or temporal"
        )
    if fold not in release.folds:
        raise DataError(
            f"params.yaml: data.split.fold is {fold!r}; {dataset}'s official folds are "
            f"{', '.join(release.folds)}"
        )
    pairs = []
    for part in ("base", "test"):
        path = folder / f"{fold}.{part}"
        if not path.is_file():
            raise DataError(f"{path}: missing; run `dvc repro -f download` to fetch the release")
        pairs.append(_read_ratings(path, sep="\t").select("user_id", "item_id"))
    return pairs[0], pairs[1]
