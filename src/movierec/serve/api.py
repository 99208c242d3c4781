"""The recommendation server behind ``movierec serve``: a JSON API over what the pipeline
trained, answering from models loaded once.

At start the server loads the processed data, the leaderboard and every served model
(the copies refitted on train + val where ``train.refit`` made them), so a request only
scores one row. Models are found by name in that set: no request value ever reaches a
file path, and nothing is written. After a ``dvc repro`` the server loads the models
again and swaps them in at once: by itself when the files it read change (polled every
``watch`` seconds; several workers each reload), or on ``POST /api/reload``. The pipeline
writes each model folder atomically, so a reload never reads a half-written file; one
that fails (the repro is half-way: new data, old models) keeps the models it had.

Every error is ``{"error": "<one line>"}`` with a 4xx status: 404 for an unknown user,
movie or model, 422 for a value out of range or a malformed request.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import polars as pl
import scipy.sparse as sp
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, Strict, StrictInt, StrictStr
from starlette.exceptions import HTTPException

from movierec.config.params import Params
from movierec.data.processed import Processed, load_processed
from movierec.errors import DataError, LookupFailed, MovierecError
from movierec.models.base import Recommender
from movierec.serve.guard import LocalOnly
from movierec.serve.prepared import PreparedRows, prepared
from movierec.serve.recommend import (
    default_model,
    is_trained,
    item_index,
    load_served,
    readable_scores,
    user_index,
)
from movierec.serve.similar import (
    CO_RATED,
    NEIGHBOURS_FILE,
    CoRated,
    co_rated,
    load_co_rated,
    similar,
    unit_vectors,
)
from movierec.store.files import reading, state_digest
from movierec.store.paths import (
    BLEND_DIRS,
    LEADERBOARD,
    MODELS_DIR,
    PROCESSED,
    REFIT_DIR,
    rebuild_command,
)
from movierec.topk import top_k

STATIC = Path(__file__).with_name("static")  # the page: shipped in the package, no CDN
MAX_SEARCH = 20  # titles a search returns at most
MAX_RATINGS = 1000  # ratings a new user may post
MAX_BODY = 256 * 1024  # bytes of a request body


class Rated(BaseModel):
    """One posted rating. Strict: ``true`` is neither movie 1 nor one star."""

    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not ignored

    movie_id: StrictInt | StrictStr
    rating: Annotated[float, Strict()]


class NewUser(BaseModel):
    """``POST /api/recommendations``: a user who is not in the data, as their ratings."""

    model_config = ConfigDict(extra="forbid")

    ratings: list[Rated] = Field(min_length=1, max_length=MAX_RATINGS)
    k: StrictInt = 10
    model: StrictStr | None = None


class NotServed(LookupFailed):
    """A model name the server did not load: 404, naming the ones it did."""


class BadRequest(MovierecError):
    """A request the API understood and refuses: 422 with its one line (a ``ValueError``
    from the code itself is a bug, and answers 500)."""


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
    refit: frozenset[str] = frozenset()  # models refitted on train + val: val is history too
    files: tuple = ()  # what it was loaded from (files_read): a change means reload
    co_rated: CoRated | None = None  # the neighbours stage's lists (the default similar)
    stale: dict[str, str] = field(default_factory=dict)  # model -> why its figures are not its own
    loaded: str = field(  # when, for /api/health (a reload shows there)
        default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime())
    )

    @staticmethod
    def check(names: list[str] | None = None) -> tuple[dict[str, Any], list[str]]:
        """The leaderboard and the models to serve, each checked trained, before any is
        loaded: one line naming what to run when there is nothing to serve."""
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
        return board, wanted

    @classmethod
    def load(cls, params: Params, names: list[str] | None = None) -> Served:
        """The processed data and the models named (default: every trained model on the
        leaderboard), after :meth:`check`."""
        board, wanted = cls.check(names)
        files = files_read(wanted)  # before reading: a change while loading shows next poll
        data = load_processed()
        models = {
            name: _guarded(name, lambda n=name: load_served(n, params, data)) for name in wanted
        }
        for name in set(models) & set(BLEND_DIRS):  # a request reads a row, not every member's
            models[name] = _guarded(
                name, lambda m=models[name]: prepared(m, data.n_users, data.n_items)
            )
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
            name: _guarded(name, lambda m=model: unit_vectors(*m.movie_vectors()))
            for name, model in models.items()
            if "movie_vectors" in model.provides
        }
        popularity = np.diff(data.matrices["train"].tocsc().indptr)
        refit = frozenset(n for n in models if (MODELS_DIR / n / REFIT_DIR / "model.npz").is_file())
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
            refit,
            files,
            load_co_rated(data),
            stale_figures(board, list(models), data),
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

    def history_row(self, name: str, user: int) -> sp.csr_matrix:
        """The ratings ``name`` scores the user from: train, and val where it was refitted."""
        row = self.data.matrices["train"][user]
        return row + self.data.matrices["val"][user] if name in self.refit else row

    def able(self, capability: str, name: str | None, what: str) -> str:
        """The model to use for ``capability``: the one asked for, or validation's pick,
        or the first that can; a model that cannot is a 422 naming those that can."""
        able = [n for n, m in self.models.items() if capability in m.provides]
        if not able:
            raise BadRequest(f"no served model can {what}")
        if name is None:
            picked = self.defaults.get("topn")
            return picked if picked in able else able[0]
        name, _ = self.model(name)
        if name not in able:
            raise BadRequest(f"{name} cannot {what}; these can: {', '.join(able)}")
        return name

    def seen_items(self, user: int) -> np.ndarray:
        """Every movie the user rated (indptr slicing: a scipy row slice costs 50 us)."""
        return self.seen.indices[self.seen.indptr[user] : self.seen.indptr[user + 1]]

    def check_k(self, k: int) -> int:
        """``k`` capped at the catalogue: a list longer than every movie is every movie."""
        if k < 1:
            raise BadRequest(f"k must be at least 1 (got {k})")
        return min(k, self.data.n_items)


def check_rating(rating: float, movie_id: int | str, data: Processed) -> None:
    """A rating the data set could hold: on its scale and, where it has few levels (whole
    stars on ml-100k, half stars on the later releases), one of them."""
    lo, hi = data.rating_range
    if not (math.isfinite(rating) and lo <= rating <= hi):
        raise BadRequest(f"rating {rating:g} of movie {movie_id} is outside {lo:g} to {hi:g}")
    levels = data.meta.get("rating_levels") or []
    if levels and not any(math.isclose(rating, level, abs_tol=1e-9) for level in levels):
        shown = ", ".join(f"{level:g}" for level in levels)
        raise BadRequest(
            f"rating {rating:g} of movie {movie_id} is not one of {data.meta['dataset']}'s "
            f"ratings ({shown})"
        )


def _folder(name: str) -> Path:
    return BLEND_DIRS[name] if name in BLEND_DIRS else MODELS_DIR / name


def _guarded(name: str, load: Callable[[], Any]) -> Any:
    """The one guarded load of a served model: whatever a damaged, foreign or mismatched
    file raises becomes one :class:`MovierecError` naming its folder and the command
    that writes it again (a bug in a family's loader included: the server stays up)."""
    try:
        return load()
    except MovierecError:
        raise
    except Exception as err:
        folder = _folder(name)
        text = " ".join(str(err).split())[:160] or "no detail"
        raise DataError(
            f"{folder}: cannot be served ({type(err).__name__}: {text}); "
            f"write it again with `{rebuild_command(folder)}`"
        ) from None


def stale_figures(board: dict[str, Any], names: list[str], data: Processed) -> dict[str, str]:
    """Served models whose leaderboard figures were computed from another trained state
    or other data than the ones served (the board is from an older run): the page and
    ``/api/models`` say so instead of showing them as these models' figures."""
    made = board.get("made_from") or {}
    rows = data.meta.get("rows_sha256")
    stale = {}
    for name in names:
        record = made.get(name)
        if record is None:
            stale[name] = "the leaderboard does not say what its figures came from"
        elif record.get("rows_sha256") != rows:
            stale[name] = "the leaderboard's figures are from other data than data/processed"
        elif record.get("state_sha256") != state_digest(_folder(name)):
            stale[name] = "the leaderboard's figures are from an earlier training of this model"
    return stale


def files_read(names: list[str]) -> tuple:
    """Size and modification time of every file a load of ``names`` reads: the
    leaderboard, the processed data and each model's folder."""
    roots = [LEADERBOARD, PROCESSED, NEIGHBOURS_FILE]
    roots += [_folder(n) for n in names]
    seen = []
    for root in roots:
        if not root.exists():
            seen.append((str(root), -1, -1))  # absent: its arrival is a change
            continue
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in paths:
            try:
                info = path.stat()
            except OSError:  # replaced between the listing and the stat: changed
                seen.append((str(path), -1, -1))
                continue
            seen.append((str(path), info.st_size, info.st_mtime_ns))
    return tuple(seen)


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


class BoundedBody:
    """Refuses a body over ``MAX_BODY`` from its declared length, before reading a byte,
    and a body that does not declare one (chunked): the API's one-line JSON, 413 or 411.

    Plain ASGI, not ``@app.middleware``: Starlette's per-request task group there costs a
    third of a small request's time.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            size = headers.get(b"content-length")
            refusal = None
            if size is not None and (not size.isdigit() or int(size) > MAX_BODY):
                refusal = (413, f"request body over {MAX_BODY // 1024} KiB")
            elif size is None and b"transfer-encoding" in headers:
                refusal = (411, "a request body must declare its Content-Length")
            if refusal:
                answer = JSONResponse({"error": refusal[1]}, status_code=refusal[0])
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)


class Reloads:
    """One reload at a time (by the watcher or ``POST /api/reload``): a second asking
    while one runs gets the state being served, so at most two copies of the models are
    ever in memory. Remembers the last attempt for ``/api/health``."""

    def __init__(self, served: Served, params: Callable[[], Params] | None) -> None:
        self.served = served
        self.params = params
        self.running = threading.Lock()
        self.last: dict[str, Any] | None = None  # when, ok, why (a failure's one line)
        self.count = {"reloaded": 0, "failed": 0}

    def run(self, why: str) -> bool | None:
        """Load again and swap in; False when the load failed (the last good models stay
        served), None when another reload was running."""
        if not self.running.acquire(blocking=False):
            return None
        try:
            old = self.served
            try:
                self.served = Served.load(
                    self.params() if self.params else old.params, list(old.models)
                )
            except Exception as err:  # noqa: BLE001 - whatever it was, keep serving
                line = str(err).splitlines()[0] if str(err) else type(err).__name__
                if not isinstance(err, MovierecError):
                    line = f"unexpected {type(err).__name__}: {line}"
                self.count["failed"] += 1
                self.last = {"when": _now(), "ok": False, "trigger": why, "error": line}
                print(f"serve: not reloaded ({why}), {line}", file=sys.stderr, flush=True)
                return False
            self.count["reloaded"] += 1
            self.last = {"when": _now(), "ok": True, "trigger": why}
            print(f"serve: reloaded {len(self.served.models)} models ({why})", flush=True)
            return True
        finally:
            self.running.release()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime())


def create_app(
    served: Served,
    params: Callable[[], Params] | None = None,
    watch: float | None = None,
    hosts: tuple[str, ...] = (),
) -> FastAPI:
    """The API over ``served`` (tests pass their own; ``movierec serve`` passes the
    project's). ``params`` reads params.yaml again for a reload (default: the same
    params); ``watch``: seconds between checks of the files read (None: only on
    ``POST /api/reload``); ``hosts``: names a request's ``Host`` may give beside the
    localhost names and IP addresses (:class:`movierec.serve.guard.LocalOnly`)."""
    stopping = threading.Event()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        """The file watcher runs while the server does (not past a test's client)."""
        if watch:
            threading.Thread(target=watcher, name="movierec-watch", daemon=True).start()
        yield
        stopping.set()

    app = FastAPI(title="movierec", docs_url=None, redoc_url=None, lifespan=lifespan)
    reloads = Reloads(served, params)
    app.add_middleware(BoundedBody)
    app.add_middleware(LocalOnly, hosts=hosts)  # outermost: checked before anything else

    def now() -> Served:
        return reloads.served

    def watcher() -> None:
        """Polls the files read; survives every error (it is the only thing that picks
        up a retrain), trying a failed set of files again only once they change."""
        failed = None
        while not stopping.wait(watch):
            try:
                files = files_read(list(now().models))
                if files == now().files or files == failed:
                    continue
                if reloads.run("files changed") is False:
                    failed = files
            except Exception as err:  # noqa: BLE001 - a watcher that dies never says so
                print(f"serve: watcher: {type(err).__name__}: {err}", file=sys.stderr, flush=True)

    @app.exception_handler(LookupFailed)
    async def _not_found(request: Request, err: LookupFailed) -> JSONResponse:
        return JSONResponse({"error": str(err).splitlines()[0]}, status_code=404)

    @app.exception_handler(MovierecError)
    async def _bad_value(request: Request, err: MovierecError) -> JSONResponse:
        return JSONResponse({"error": str(err).splitlines()[0]}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def _malformed(request: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0] if err.errors() else {}
        hidden = ("query", "path", "body", "int", "str", "float")  # where, not which type tried
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in hidden)
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

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:
        """What every browser asks for first (a 404 in its console otherwise)."""
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

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
            "loaded": s.loaded,
            "last_reload": reloads.last,  # a failed one: when and why (still serving these)
            "reloads": dict(reloads.count),
            "preparing": [  # blends still scored per request until their rows are ready
                n
                for n, m in s.models.items()
                if isinstance(m, PreparedRows) and not m.ready.is_set()
            ],
            "stale_figures": s.stale,
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
        for name, why in s.stale.items():
            if name in rows:
                rows[name]["stale"] = why
        return {
            "k": s.board.get("k"),
            "selected": s.defaults,
            "models": list(rows.values()),
            "stale": s.stale,
        }

    @app.get("/api/users/{user_id}/recommendations")
    async def recommendations(
        user_id: str, k: int = Query(10), model: str | None = None
    ) -> JSONResponse:
        s = now()
        k = s.check_k(k)
        name, scorer = s.model(model)
        user = s.user(user_id)
        row = scorer.score_users(np.array([user]))[0]
        kind, recs = _ranked(s, scorer, row, s.seen_items(user), k)
        return JSONResponse(
            {"user_id": user_id, "model": name, "score": kind, "recommendations": recs}
        )

    @app.post("/api/recommendations")
    async def new_user(body: NewUser) -> JSONResponse:
        """Recommendations for someone who is not in the data, from the ratings they post:
        folded in by a model that can score a row of ratings ("fold_in")."""
        s = now()
        k = s.check_k(body.k)
        name = s.able("fold_in", body.model, "score a new user")
        items, values = [], []
        for entry in body.ratings:
            check_rating(entry.rating, entry.movie_id, s.data)
            items.append(s.movie(str(entry.movie_id)))
            values.append(entry.rating)
        if len(set(items)) != len(items):
            raise BadRequest("ratings: a movie is rated twice")
        row = sp.csr_matrix((values, ([0] * len(items), items)), shape=(1, s.data.n_items))
        scorer = s.models[name]
        scores = scorer.score_ratings(row, s.data)[0]
        kind, recs = _ranked(s, scorer, scores, np.array(items), k)
        return JSONResponse({"model": name, "score": kind, "recommendations": recs})

    @app.get("/api/users/{user_id}/explain")
    def explain(
        user_id: str, movie_id: str, k: int = Query(5), model: str | None = None
    ) -> dict[str, Any]:
        """Why ``model`` scores ``movie_id`` for the user: the rated movies that add most
        to its score (item-based models: "explain"), each with its share of the total."""
        s = now()
        name = s.able("explain", model, "say which ratings made a score")
        user, item = s.user(user_id), s.movie(movie_id)
        if k < 1:
            raise BadRequest(f"k must be at least 1 (got {k})")
        k = min(k, MAX_RATINGS)  # more reasons than ratings posted at most: all of them
        row = s.history_row(name, user)
        parts = s.models[name].contributions(row, item, s.data)
        order = sorted(range(len(parts)), key=lambda j: (-parts[j], int(row.indices[j])))[:k]
        total = float(np.abs(parts).sum())
        return {
            "user_id": user_id,
            "model": name,
            "movie": s.movies[item],
            "rated": int(row.nnz),
            "because": [
                s.movies[int(row.indices[j])]
                | {
                    "rating": float(row.data[j]),
                    "contribution": round(float(parts[j]), 6),
                    "share": round(float(parts[j]) / total, 4) if total > 0 else 0.0,
                }
                for j in order
            ],
        }

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
        """Movies like ``movie_id``: the ``neighbours`` stage's co-rated lists by default
        (``model=co_rated``), or the nearest in a served model's movie vectors."""
        s = now()
        k = s.check_k(k)
        sources = ([CO_RATED] if s.co_rated is not None else []) + list(s.vectors)
        if not sources:
            raise NotServed(
                "no similar-movie lists (run `dvc repro neighbours`) and no served model "
                "with movie vectors"
            )
        model = model or sources[0]
        if model not in sources:
            raise NotServed(
                f"model {model!r} has no movie vectors here; choose one of {', '.join(sources)}"
            )
        item = s.movie(movie_id)
        if model == CO_RATED:
            near = co_rated(s.data, s.co_rated, item, k)
            method = s.co_rated.method
        else:
            near = similar(s.data, *s.vectors[model], item, k)
            method = f"cosine of {model}'s movie vectors"
        return {
            "movie": s.movies[int(item)],
            "model": model,
            "method": method,
            "similar": [
                s.movies[int(n.item)] | {"rank": n.rank, "similarity": round(n.similarity, 4)}
                for n in near
            ],
        }

    @app.post("/api/reload")
    def reload() -> JSONResponse:
        """Load every served model again (after ``dvc repro``) and swap them in at once.
        One at a time: while one runs, the answer is the state served (202); a failed
        load keeps the last good models and answers 409 with its one line."""
        done = reloads.run("POST /api/reload")
        s = now()
        if done is None:
            body = {"status": "reloading", "models": list(s.models), "loaded": s.loaded}
            return JSONResponse(body, status_code=202)
        if done is False:
            error = (
                f"not reloaded: {reloads.last['error']} (still serving what loaded at {s.loaded})"
            )
            return JSONResponse({"error": error}, status_code=409)
        return JSONResponse({"status": "reloaded", "models": list(s.models), "loaded": s.loaded})

    return app
