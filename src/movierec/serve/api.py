"""The recommendation server behind ``movierec serve``: a JSON API over what the pipeline
trained, answering from models loaded once.

At start the server loads the processed data, the leaderboard and every served model
(the copies refitted on train + val where ``train.refit`` made them), so a request only
scores one row. Models are found by name in that set: no request value ever reaches a
file path, and nothing is written. ``POST /api/reload`` loads the models again after a
``dvc repro`` (the pipeline writes each model folder atomically, so a reload never
reads a half-written file) and swaps them in at once.

Every error is ``{"error": "<one line>"}`` with a 4xx status: 404 for an unknown user,
movie or model, 422 for a value out of range or a malformed request.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from movierec.config.params import Params
from movierec.data.processed import Processed, load_processed
from movierec.errors import LookupFailed, MovierecError
from movierec.models.base import Recommender
from movierec.serve.recommend import (
    default_model,
    is_trained,
    item_index,
    load_served,
    readable_scores,
    user_index,
)
from movierec.serve.similar import similar, unit_vectors
from movierec.store.files import reading
from movierec.store.paths import LEADERBOARD
from movierec.topk import top_k

STATIC = Path(__file__).with_name("static")  # the page: shipped in the package, no CDN
MAX_SEARCH = 20  # titles a search returns at most
MAX_RATINGS = 1000  # ratings a new user may post
MAX_BODY = 256 * 1024  # bytes of a request body


class Rated(BaseModel):
    movie_id: int | str
    rating: float


class NewUser(BaseModel):
    """``POST /api/recommendations``: a user who is not in the data, as their ratings."""

    ratings: list[Rated] = Field(min_length=1, max_length=MAX_RATINGS)
    k: int = 10
    model: str | None = None


class NotServed(LookupFailed):
    """A model name the server did not load: 404, naming the ones it did."""


@dataclass
class Served:
    """Everything a request reads, loaded once; replaced whole on reload."""

    params: Params
    data: Processed
    models: dict[str, Recommender]
    board: dict[str, Any]
    defaults: dict[str, str]  # task (topn, rating) -> the model validation selects
    seen: sp.csr_matrix  # every rating of every user (train, val and test): never recommended
    vectors: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    movies: list[dict[str, Any]] = field(default_factory=list)  # by our item index
    popularity: np.ndarray | None = None  # training ratings per movie (search order)
    users: dict[str, int] = field(default_factory=dict)  # original user id -> our index
    movie_ids: dict[str, int] = field(default_factory=dict)  # original movie id -> our index

    @classmethod
    def load(cls, params: Params, names: list[str] | None = None) -> Served:
        """The processed data and the models named (default: every trained model on the
        leaderboard); one line naming what to run when there is nothing to serve."""
        if not LEADERBOARD.is_file():
            raise MovierecError(
                f"{LEADERBOARD}: nothing trained to serve yet; run `dvc repro` first"
            )
        with reading(LEADERBOARD):
            board = json.loads(LEADERBOARD.read_text())
        on_board = [r["model"] for r in board.get("topn", [])]
        on_board += [r["model"] for r in board.get("rating", []) if r["model"] not in on_board]
        wanted = names or [name for name in on_board if is_trained(name)]
        missing = [name for name in wanted if not is_trained(name)]
        if missing:
            raise MovierecError(
                f"--models: {missing[0]} is not trained; run `dvc repro` first "
                f"(trained: {', '.join(n for n in on_board if is_trained(n)) or 'none'})"
            )
        if not wanted:
            raise MovierecError("no trained model to serve; run `dvc repro` first")
        data = load_processed()
        models = {name: load_served(name, params, data) for name in wanted}
        defaults = {}
        for task in ("topn", "rating"):
            try:
                chosen = default_model(task)
            except MovierecError:
                continue
            if chosen in models:
                defaults[task] = chosen
        seen = sum(
            (data.matrices[s] for s in ("train", "val", "test")),
            sp.csr_matrix(data.matrices["train"].shape),
        )
        vectors = {
            name: unit_vectors(*model.movie_vectors())
            for name, model in models.items()
            if "movie_vectors" in model.provides
        }
        popularity = np.diff(data.matrices["train"].tocsc().indptr)
        return cls(
            params,
            data,
            models,
            board,
            defaults,
            sp.csr_matrix(seen),
            vectors,
            _movies(data),
            popularity,
            {str(uid): i for uid, i in zip(data.users["user_id"], data.users["user"], strict=True)},
            {
                str(mid): i
                for mid, i in zip(data.items["movie_id"], data.items["item"], strict=True)
            },
        )

    def model(self, name: str | None, task: str = "topn") -> tuple[str, Recommender]:
        if not name:
            name = self.defaults.get(task) or next(iter(self.models))
        if name not in self.models:
            raise NotServed(f"model {name!r} is not served; served: {', '.join(self.models)}")
        return name, self.models[name]

    def user(self, user_id: str) -> int:
        """Our index of a user; an id not found as written gets ``user_index``'s one line."""
        found = self.users.get(user_id)
        return found if found is not None else user_index(self.data, user_id)

    def movie(self, movie_id: str) -> int:
        """Our index of a movie; an id not found as written gets ``item_index``'s one line."""
        found = self.movie_ids.get(movie_id)
        return found if found is not None else item_index(self.data, movie_id)

    def check_k(self, k: int) -> int:
        if not 1 <= k <= self.data.n_items:
            raise ValueError(f"k must be between 1 and {self.data.n_items} (got {k})")
        return k


def _movies(data: Processed) -> list[dict[str, Any]]:
    """Every movie as the API shows it, built once (a request only picks rows)."""
    out = []
    for row in data.items.iter_rows(named=True):
        genres = row.get("genres")
        out.append(
            {
                "movie_id": row["movie_id"],
                "title": row["title"],
                "year": row.get("year"),
                "genres": list(genres) if genres is not None else [],
            }
        )
    return out


def _ranked(
    s: Served, scorer: Recommender, row: np.ndarray, exclude: np.ndarray, k: int
) -> tuple[str, list[dict[str, Any]]]:
    """The top-``k`` of one row of scores, ``exclude`` left out, with readable scores."""
    row = np.asarray(row, dtype=np.float32).copy()
    row[exclude] = -np.inf
    ranked = top_k(row[None], k)[0]
    ranked = ranked[ranked >= 0]
    kind, scores = readable_scores(scorer, row, ranked, s.data)
    return kind, [
        s.movies[int(item)] | {"rank": rank, "score": score}
        for rank, (item, score) in enumerate(zip(ranked, scores, strict=True), start=1)
    ]


def create_app(served: Served) -> FastAPI:
    """The API over ``served`` (tests pass their own; ``movierec serve`` passes the
    project's)."""
    app = FastAPI(title="movierec", docs_url=None, redoc_url=None)
    state = {"served": served}
    lock = threading.Lock()

    def now() -> Served:
        return state["served"]

    @app.middleware("http")
    async def _bounded(request: Request, call_next):
        size = request.headers.get("content-length")
        if size is not None and (not size.isdigit() or int(size) > MAX_BODY):
            return JSONResponse(
                {"error": f"request body over {MAX_BODY // 1024} KiB"}, status_code=413
            )
        return await call_next(request)

    @app.exception_handler(LookupFailed)
    async def _not_found(request: Request, err: LookupFailed) -> JSONResponse:
        return JSONResponse({"error": str(err).splitlines()[0]}, status_code=404)

    @app.exception_handler(MovierecError)
    async def _bad_value(request: Request, err: MovierecError) -> JSONResponse:
        return JSONResponse({"error": str(err).splitlines()[0]}, status_code=422)

    @app.exception_handler(ValueError)
    async def _out_of_range(request: Request, err: ValueError) -> JSONResponse:
        return JSONResponse({"error": str(err).splitlines()[0]}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def _malformed(request: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0] if err.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body"))
        return JSONResponse(
            {"error": f"{where or 'request'}: {first.get('msg', 'malformed request')}"},
            status_code=422,
        )

    @app.exception_handler(HTTPException)
    async def _http(request: Request, err: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(err.detail)}, status_code=err.status_code)

    @app.exception_handler(Exception)
    async def _internal(request: Request, err: Exception) -> JSONResponse:
        return JSONResponse({"error": f"internal error ({type(err).__name__})"}, status_code=500)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        """The web page: a user's history beside the top-10 of the models chosen, similar
        movies on a click, a new user's list as they rate, and the leaderboard."""
        return FileResponse(STATIC / "index.html")

    @app.get("/docs", include_in_schema=False)
    async def api_docs():
        """The OpenAPI page, its assets served from the package (FastAPI's default page
        loads them from a CDN, and is blank offline)."""
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="movierec API",
            swagger_js_url="/static/swagger/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger/swagger-ui.css",
            swagger_favicon_url="/static/swagger/favicon-32x32.png",
        )

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        s = now()
        return {
            "status": "ok",
            "dataset": s.data.meta["dataset"],
            "users": s.data.n_users,
            "movies": s.data.n_items,
            "models": list(s.models),
        }

    @app.get("/api/models")
    def models() -> dict[str, Any]:
        """The leaderboard rows of the served models, and which one validation selects."""
        s = now()
        rows = {}
        for task in ("rating", "topn"):
            for row in s.board.get(task, []):
                if row["model"] in s.models:
                    rows.setdefault(row["model"], {"model": row["model"]})[task] = row
        return {"k": s.board.get("k"), "selected": s.defaults, "models": list(rows.values())}

    @app.get("/api/users/{user_id}/recommendations")
    async def recommendations(
        user_id: str, k: int = Query(10), model: str | None = None
    ) -> JSONResponse:
        s = now()
        s.check_k(k)
        name, scorer = s.model(model)
        user = s.user(user_id)
        row = scorer.score_users(np.array([user]))[0]
        kind, recs = _ranked(s, scorer, row, s.seen[user].indices, k)
        return JSONResponse(
            {"user_id": user_id, "model": name, "score": kind, "recommendations": recs}
        )

    @app.post("/api/recommendations")
    async def new_user(body: NewUser) -> JSONResponse:
        """Recommendations for someone who is not in the data, from the ratings they post:
        folded in by a model that can score a row of ratings ("fold_in")."""
        s = now()
        s.check_k(body.k)
        able = [n for n, m in s.models.items() if "fold_in" in m.provides]
        if not able:
            raise ValueError("no served model can score a new user (serve ease)")
        if body.model is None:
            picked = s.defaults.get("topn")
            name = picked if picked in able else able[0]
        else:
            name, _ = s.model(body.model)
            if name not in able:
                raise ValueError(f"{name} cannot score a new user; these can: {', '.join(able)}")
        lo, hi = s.data.rating_range
        items, values = [], []
        for entry in body.ratings:
            if not lo <= entry.rating <= hi:
                raise ValueError(
                    f"rating {entry.rating:g} of movie {entry.movie_id} is outside {lo:g} to {hi:g}"
                )
            items.append(s.movie(str(entry.movie_id)))
            values.append(entry.rating)
        if len(set(items)) != len(items):
            raise ValueError("ratings: a movie is rated twice")
        row = sp.csr_matrix((values, ([0] * len(items), items)), shape=(1, s.data.n_items))
        scorer = s.models[name]
        scores = scorer.score_ratings(row, s.data)[0]
        kind, recs = _ranked(s, scorer, scores, np.array(items), body.k)
        return JSONResponse({"model": name, "score": kind, "recommendations": recs})

    @app.get("/api/users/{user_id}/history")
    def history(user_id: str) -> dict[str, Any]:
        """The user's ratings, best first (ties: the latest first, where there are times)."""
        s = now()
        user = s.user(user_id)
        rows = s.data.ratings.filter(pl.col("user") == user)
        order = ["rating", "timestamp"] if "timestamp" in rows.columns else ["rating"]
        rows = rows.sort(order, descending=True, nulls_last=True)
        return {
            "user_id": user_id,
            "ratings": [
                s.movies[int(r["item"])] | {"rating": float(r["rating"])}
                for r in rows.iter_rows(named=True)
            ],
        }

    @app.get("/api/movies/search")
    def search(q: str = Query(..., min_length=1, max_length=200)) -> dict[str, Any]:
        """Titles containing ``q`` (case-insensitive), the most rated first."""
        s = now()
        items = s.data.items
        hits = items.filter(
            items["title"].str.to_lowercase().str.contains(q.strip().lower(), literal=True)
        )
        order = sorted(hits["item"].to_list(), key=lambda i: (-s.popularity[i], i))[:MAX_SEARCH]
        return {"query": q, "movies": [s.movies[int(i)] for i in order]}

    @app.get("/api/movies/{movie_id}/similar")
    def similar_movies(
        movie_id: str, k: int = Query(10), model: str | None = None
    ) -> dict[str, Any]:
        s = now()
        s.check_k(k)
        if not s.vectors:
            raise NotServed(
                "no served model has movie vectors (serve word2vec, ease, mf_bias, ...)"
            )
        if model is None:
            model = "word2vec" if "word2vec" in s.vectors else next(iter(s.vectors))
        if model not in s.vectors:
            raise NotServed(
                f"model {model!r} has no movie vectors here; choose one of {', '.join(s.vectors)}"
            )
        item = s.movie(movie_id)
        table, has = s.vectors[model]
        near = similar(s.data, table, has, item, k)
        return {
            "movie": s.movies[int(item)],
            "model": model,
            "similar": [
                s.movies[int(n.item)] | {"rank": n.rank, "similarity": round(n.similarity, 4)}
                for n in near
            ],
        }

    @app.post("/api/reload")
    def reload() -> dict[str, Any]:
        """Load every served model again (after ``dvc repro``) and swap them in at once."""
        with lock:
            old = now()
            state["served"] = Served.load(old.params, list(old.models))
        return {"status": "reloaded", "models": list(now().models)}

    return app
