"""word2vec item embeddings, similar movies, maps and unit reports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import yaml

from movierec.cli import main
from movierec.config.params import load_params
from movierec.data.processed import load_processed
from movierec.pipeline.embed_step import (
    embed_section,
    genre_coherence,
    next_movie_metrics,
    run_embed,
    sentences,
    train_word2vec,
)
from movierec.serve.insight import InsightParams, tsne_map
from movierec.serve.similar import find_movie, movie_vectors

ROOT = Path(__file__).resolve().parents[2]

SMALL = {"epochs": 3, "min_count": 1, "vector_size": 16}


def _embed(project, **overrides):
    params = load_params()
    params.extra["embed"] = (params.extra.get("embed") or {}) | SMALL | overrides
    return params, run_embed(params, load_processed())


def test_sentences_are_training_movies_in_order(tiny_project):
    data = load_processed()
    corpus = sentences(data)
    train = data.splits["train"]
    assert sum(len(s) for s in corpus) == len(train)
    first_user = train.user == train.user[0]
    ids = data.items["movie_id"].cast(str).to_numpy()
    assert corpus[0] == list(ids[train.item[first_user]])
    held = set(data.splits["test"].item[data.splits["test"].user == train.user[0]])
    assert not held & set(train.item[first_user])  # test movies never enter a sentence


def test_same_seed_same_vectors_other_seed_differs(tiny_project):
    data = load_processed()
    p = embed_section(load_params())
    p.epochs, p.min_count = 2, 1
    a, b = train_word2vec(data, p, 1), train_word2vec(data, p, 1)
    c = train_word2vec(data, p, 2)
    assert np.array_equal(a.wv.vectors, b.wv.vectors)
    assert not np.array_equal(a.wv.vectors, c.wv.vectors)


def test_next_movie_metric_hand_built():
    # 2 users x 4 movies; user 0 saw movie 0, held out movie 2; user 1 saw 1, held out 3.
    scores = np.array([[9.0, 1.0, 5.0, 7.0], [0.0, 9.0, 8.0, 1.0]], dtype=np.float32)
    seen = sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 1, 0, 0]], dtype=np.float32))
    target = sp.csr_matrix(np.array([[0, 0, 3, 0], [0, 0, 0, 1]], dtype=np.float32))
    m = next_movie_metrics(scores, seen, target, 1)
    # user 0 ranks 3, 2 -> top-1 misses; user 1 ranks 2, 3 -> misses too
    assert m["hit@1"] == 0.0
    m = next_movie_metrics(scores, seen, target, 2)
    # both hit at rank 2: ndcg = 1 / log2(3) for each
    assert m["hit@2"] == 1.0
    assert m["ndcg@2"] == pytest.approx(1 / np.log2(3))


def test_genre_coherence_hand_built():
    vectors = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    genres = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=np.float32)
    out = genre_coherence(vectors, np.ones(4, bool), genres, 1)
    assert out["coherence"] == 1.0
    assert out["random"] == pytest.approx(1 / 3)  # one of the three others shares a genre


def test_embed_metrics_and_similar_cli(tiny_project, capsys):
    params, out = _embed(tiny_project)
    summary = out["embed"]
    assert summary["sentence_order"] == "time"
    assert 0 <= summary["next_movie"]["hit@10"] <= 1
    assert summary["coverage_catalogue"] > 0.5
    data = load_processed()
    title = data.items["title"][3]
    main(["similar", title.upper(), "-k", "4", "--model", "word2vec"])
    shown = capsys.readouterr().out
    assert f"Movies like {title}" in shown and len(shown.strip().splitlines()) == 5
    main(["similar", "--movie-id", str(data.items["movie_id"][3]), "-k", "2", "--model", "word2vec"])
    assert f"Movies like {title}" in capsys.readouterr().out


def test_unknown_title_suggests_and_exits_2(tiny_project, capsys):
    _embed(tiny_project)
    data = load_processed()
    title = data.items["title"][5]
    with pytest.raises(SystemExit) as exit_info:
        main(["similar", title[:-3] + "xx)"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no movie titled") and "did you mean" in err


def test_ambiguous_title_lists_ids(tiny_project, capsys):
    _embed(tiny_project)
    with pytest.raises(SystemExit) as exit_info:
        main(["similar", "movie"])  # a substring of many synthetic titles
    assert exit_info.value.code == 2
    assert "--movie-id" in capsys.readouterr().err


def test_tsne_map_has_the_plotted_fields(tiny_project):
    params, _ = _embed(tiny_project)
    data = load_processed()
    vectors, has = movie_vectors("word2vec", data, params)
    frame = tsne_map(vectors, has, data, InsightParams(tsne_movies=40, perplexity=5), 0)
    assert frame.height == 40
    # what `dvc plots show metrics/insight/maps/<m>.csv -t genre_map -x x -y y` draws
    template = (ROOT / ".dvc" / "plots" / "genre_map.json").read_text()
    assert {"x", "y", "genre", "title"} <= set(frame.columns)
    assert all(f'"{field}"' in template for field in ("genre", "title"))
    assert np.isfinite(frame["x"].to_numpy()).all()


def test_find_movie_by_id_and_exact_title(tiny_project):
    data = load_processed()
    assert find_movie(data, None, str(data.items["movie_id"][7])) == 7
    assert find_movie(data, data.items["title"][7].lower(), None) == 7


def test_a_rerun_writes_the_same_bytes(tiny_project):
    """DVC hashes the saved vectors: the same seed must give the same file, not one that
    differs by the time and temporary path of its save."""
    import time

    _embed(tiny_project)
    first = (tiny_project / "data" / "models" / "word2vec" / "vectors.kv").read_bytes()
    time.sleep(1.1)  # a save time in the file would now differ
    _embed(tiny_project)
    assert (tiny_project / "data" / "models" / "word2vec" / "vectors.kv").read_bytes() == first


def test_insight_redraws_only_the_maps_of_models_whose_state_changed(tiny_project):
    """Retraining one model (or a rating model with no map) leaves the other maps as they
    were, copied from the last run instead of recomputed."""
    from movierec.pipeline.embed_step import run_embed_stage
    from movierec.pipeline.train_step import train_model
    from movierec.serve import insight

    raw = yaml.safe_load((tiny_project / "params.yaml").read_text())
    raw["train"]["models"] = ["bias", "mf", "mf_bias"]
    raw["insight"]["tsne_movies"] = 60
    (tiny_project / "params.yaml").write_text(yaml.safe_dump(raw))
    params, data = load_params(), load_processed()
    for name in ("bias", "mf", "mf_bias"):
        train_model(name, params)
    run_embed_stage(params)
    first = insight.run_insight(params, data)
    drawn = sorted(line.split(":")[0] for line in first if "t-SNE map of" in line)
    assert drawn == ["mf", "mf_bias", "word2vec"]
    maps = tiny_project / "metrics" / "insight" / "maps"
    before = {p.name: p.read_bytes() for p in maps.iterdir()}
    train_model("bias", params)  # same state: nothing to redraw
    again = insight.run_insight(params, data)
    assert all("unchanged" in line for line in again if "map" in line)
    raw["models"]["mf"]["factors"] = 8  # mf retrained into another state
    (tiny_project / "params.yaml").write_text(yaml.safe_dump(raw))
    params = load_params()
    train_model("mf", params)
    third = insight.run_insight(params, data)
    assert any(line.startswith("mf: t-SNE map of") for line in third)
    assert any(line.startswith("mf_bias: t-SNE map unchanged") for line in third)
    after = {p.name: p.read_bytes() for p in maps.iterdir()}
    assert after["mf_bias.csv"] == before["mf_bias.csv"]
