"""A look inside the models: 2-D maps of movie vectors and what hidden units respond to.

The map is t-SNE (scikit-learn) of unit-length movie vectors, coloured by each
movie's first listed genre. The unit report follows the published analysis:
run the validation pairs through the network, and for each unit of a hidden
layer list the 20 distinct movies of its most activating pairs, with their mean
release year and mean training rating.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import polars as pl

from movierec.config.params import Params
from movierec.config.sections import InsightParams, insight_section  # noqa: F401
from movierec.data.processed import Processed
from movierec.models.registry import providing
from movierec.models.trained import load_model, trained_models
from movierec.serve.similar import movie_vectors
from movierec.store.files import atomic_dir, atomic_path, state_digest, write_json, write_text
from movierec.store.paths import CODE, INSIGHT, MODELS_DIR

# Which trained state each map and report was made from (not in git: a fresh clone
# has none and draws every map).
INSIGHT_KEYS = CODE.parent / "insight" / "keys.json"


def main_genre(data: Processed) -> list[str]:
    return [gs[0] if len(gs) else "(none)" for gs in data.items["genres"].to_list()]


def tsne_map(
    vectors: np.ndarray, has: np.ndarray, data: Processed, p: InsightParams, seed: int
) -> pl.DataFrame:
    """``movie_id, title, genre, x, y`` for the most-rated movies that have a vector."""
    from sklearn.manifold import TSNE

    support = np.diff(data.matrices["train"].tocsc().indptr)
    candidates = np.flatnonzero(has)
    chosen = candidates[np.argsort(-support[candidates], kind="stable")[: p.tsne_movies]]
    chosen.sort()
    perplexity = min(p.perplexity, (len(chosen) - 1) / 3)
    xy = TSNE(
        n_components=2,
        perplexity=perplexity,
        init="pca",
        random_state=seed,
        metric="cosine",
        max_iter=p.iterations,
    ).fit_transform(vectors[chosen])
    items = data.items
    genres = main_genre(data)
    return pl.DataFrame(
        {
            "movie_id": items["movie_id"].to_numpy()[chosen],
            "title": items["title"].to_numpy()[chosen],
            "genre": [genres[i] for i in chosen],
            "x": xy[:, 0].round(3),
            "y": xy[:, 1].round(3),
        }
    )


def write_csv(frame: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, ".csv") as tmp:
        frame.write_csv(tmp)


def unit_report(
    name: str, acts: np.ndarray, items: np.ndarray, data: Processed, top: int, seed: int
) -> str:
    """Markdown: per unit the ``top`` distinct movies of its most activating pairs."""
    titles = data.items["title"].to_list()
    years = data.items["year"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    train = data.matrices["train"].tocsc()
    counts = np.diff(train.indptr)
    sums = np.asarray(train.sum(axis=0)).ravel()
    mean_rating = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    rows, blocks = [], []
    for unit in range(acts.shape[1]):
        order = np.argsort(-acts[:, unit], kind="stable")
        _, first = np.unique(items[order], return_index=True)
        movies = items[order][np.sort(first)][:top]
        if acts[order[0], unit] <= 0:
            rows.append((unit, np.nan, np.nan))
            blocks.append(f"### unit {unit}\n\nnever active on the validation pairs\n")
            continue
        year, rating = float(np.nanmean(years[movies])), float(np.nanmean(mean_rating[movies]))
        rows.append((unit, year, rating))
        blocks.append(
            f"### unit {unit} — mean year {year:.1f}, mean rating {rating:.2f}\n\n"
            + "; ".join(titles[m] for m in movies)
            + "\n"
        )
    stats = np.array([(y, r) for _, y, r in rows if np.isfinite(r)])
    rng = np.random.default_rng(seed)
    pool = np.unique(items)
    rand = np.array(
        [
            (np.nanmean(years[s]), np.nanmean(mean_rating[s]))
            for s in (rng.choice(pool, min(top, len(pool)), replace=False) for _ in range(200))
        ]
    )
    head = [
        f"# What the hidden units of `{name}` respond to",
        "",
        f"Layer {acts.shape[1]} units wide, validation pairs ({len(items):,}). For each unit: the "
        f"{top} distinct movies of its most activating pairs. If units split movies by quality "
        "or age, the spread of their mean rating / year across units is much wider than for "
        f"random sets of {top} validation movies.",
        "",
        "| | mean rating: std across sets | range | mean year: std | range |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, s in (("units", stats), ("random sets", rand)):
        if len(s):
            head.append(
                f"| {label} | {s[:, 1].std():.3f} | {s[:, 1].min():.2f}–{s[:, 1].max():.2f} "
                f"| {s[:, 0].std():.1f} | {s[:, 0].min():.0f}–{s[:, 0].max():.0f} |"
            )
    return "\n".join(head) + "\n\n" + "\n".join(blocks)


def _model_key(name: str, params: Params, data: Processed, p: InsightParams) -> str:
    """What a model's map and unit report are made from: its trained state, the data, the
    insight settings, the seed, the CPU kernels and the insight code. Equal keys, equal files."""
    code = CODE / "insight.txt"
    parts = {
        "state": state_digest(MODELS_DIR / name),
        "data": data.fingerprint(),
        "insight": asdict(p),
        "seed": params.seed,
        "kernels": (params.extra.get("train") or {}).get("kernels"),
        "code": code.read_text() if code.is_file() else None,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class _Reuse:
    """The maps and reports of models whose key is unchanged are copied from the last run
    instead of made again: retraining one model redraws its own map only."""

    def __init__(self, out: Path) -> None:
        self.out, self.path = out, INSIGHT_KEYS
        self.old: dict[str, str] = {}
        if self.path.is_file():
            with contextlib.suppress(ValueError, OSError):
                self.old = json.loads(self.path.read_text())
        self.new: dict[str, str] = {}

    def take(self, kind: str, name: str, key: str, target: Path) -> bool:
        """Copy last run's ``kind/<file>`` into ``target`` if ``name``'s key is unchanged."""
        self.new[f"{kind}/{name}"] = key
        previous = self.out / kind / target.name
        if self.old.get(f"{kind}/{name}") != key or not previous.is_file():
            return False
        shutil.copyfile(previous, target)
        return True

    def save(self) -> None:
        write_json(self.path, self.new)


def run_insight(params: Params, data: Processed, out: Path = INSIGHT) -> list[str]:
    """Maps for every trained model with movie vectors, unit reports for every model with
    hidden units; returns one line per written file. Models are asked, never named; a
    model whose state did not change keeps last run's files (:class:`_Reuse`)."""
    p = insight_section(params)
    names = trained_models(params)
    reuse = _Reuse(out)
    keys = {n: _model_key(n, params, data, p) for n in names if (MODELS_DIR / n).is_dir()}
    lines = []
    with atomic_dir(out / "maps") as maps:
        for name in providing("movie_vectors", names):
            target = maps / f"{name}.csv"
            if name in keys and reuse.take("maps", name, keys[name], target):
                lines.append(f"{name}: t-SNE map unchanged (same model) -> {out}/maps/{name}.csv")
                continue
            vectors, has = movie_vectors(name, data, params)
            frame = tsne_map(vectors, has, data, p, params.seed)
            frame = frame.with_columns(pl.lit(name).alias("model"))  # the map's caption
            write_csv(frame, target)
            lines.append(f"{name}: t-SNE map of {frame.height} movies -> {out}/maps/{name}.csv")
    with atomic_dir(out / "units") as units:
        reported = providing("hidden_units", names)
        for name in reported:
            target = units / f"{name}.md"
            if name in keys and reuse.take("units", name, keys[name], target):
                lines.append(
                    f"{name}: hidden units unchanged (same model) -> {out}/units/{name}.md"
                )
                continue
            model = load_model(name, params, data)
            acts = model.hidden_units(data, "val", p.layer)
            text = unit_report(name, acts, data.splits["val"].item, data, p.top, params.seed)
            write_text(target, text)
            lines.append(f"{name}: hidden units -> {out}/units/{name}.md")
        index = ["# Hidden-unit reports", ""] + (
            [f"- [{n}]({n}.md)" for n in reported]
            or ["No model in train.models has hidden units to report."]
        )
        write_text(units / "index.md", "\n".join(index) + "\n")
    reuse.save()
    return lines
