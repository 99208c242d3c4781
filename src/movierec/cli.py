"""The ``movierec`` command: the pipeline's steps plus recommendations for people.

Each command imports what it runs inside its own function: ``movierec --help`` and
the light commands answer without loading torch and every model family.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import tempfile
from pathlib import Path

from movierec.config.yaml_reader import read_yaml
from movierec.errors import ConfigError, LookupFailed
from movierec.pipeline.runner import run_cli


def _params():
    """params.yaml checked as the stages check it (one loader for both)."""
    from movierec.pipeline.params import load_params

    return load_params()


def _at_least_one(flag: str, value: int) -> int:
    if value < 1:
        raise LookupFailed(f"{flag} must be at least 1 (got {value})")
    return value


def _read_yaml(path: str) -> dict:
    """A YAML file named on the command line: one line when it is missing or malformed."""
    return read_yaml(path)


def _step(name: str):
    """A pipeline step (``movierec.pipeline.steps``): the same function its DVC stage runs."""

    def run(args: argparse.Namespace) -> None:
        from movierec.pipeline import steps

        func = getattr(steps, name)
        func(args.argument) if name in steps.ONE_ARGUMENT else func()

    return run


def cmd_recommend(args: argparse.Namespace) -> None:
    from movierec.data.processed import load_processed
    from movierec.serve.recommend import default_model, recommend

    _at_least_one("-k", args.k)
    params = _params()
    data = load_processed()
    model = args.model or default_model("topn")
    kind, recs = recommend(data, params, args.user, args.k, model)
    print(f"Top {len(recs)} movies for user {args.user} ({model}, {data.meta['dataset']}):")
    width = max((len(r.title) for r in recs), default=5)
    print(f"{'#':>3}  {'movie':<{width}}  {'year':>4}  {kind}")
    for r in recs:
        year = "" if r.year is None else str(r.year)
        print(f"{r.rank:>3}  {r.title:<{width}}  {year:>4}  {r.score:g}")


def cmd_predict(args: argparse.Namespace) -> None:
    from movierec.data.processed import load_processed
    from movierec.serve.recommend import default_model, predict_one

    params = _params()
    data = load_processed()
    model = args.model or default_model("rating")
    pred, actual = predict_one(data, params, args.user, args.movie, model)
    extra = f" (rated {actual:g})" if actual is not None else ""
    print(f"user {args.user}, movie {args.movie}: predicted {pred:.2f}{extra} [{model}]")


def cmd_similar(args: argparse.Namespace) -> None:
    from movierec.data.processed import load_processed
    from movierec.errors import LookupFailed
    from movierec.serve.similar import (
        CO_RATED,
        co_rated,
        find_movie,
        load_co_rated,
        movie_vectors,
        similar,
    )

    if (args.title is None) == (args.movie_id is None):
        raise LookupFailed("give a movie title or --movie-id (not both)")
    if args.title is not None and not args.title.strip():
        raise LookupFailed('the title is empty; give part of a title, e.g. "Toy Story"')
    _at_least_one("-k", args.k)
    params = _params()
    data = load_processed()
    item = find_movie(data, args.title, args.movie_id)
    if args.model == CO_RATED:
        lists = load_co_rated(data)
        rows = co_rated(data, lists, item, args.k)
        how = lists.method
    else:
        vectors, has = movie_vectors(args.model, data, params)
        rows = similar(data, vectors, has, item, args.k)
        how = f"{args.model}, cosine similarity"
    print(f"Movies like {data.items['title'][item]} ({how}):")
    width = max((len(r.title) for r in rows), default=5)
    for r in rows:
        print(f"{r.rank:>3}  {r.similarity:6.3f}  {r.title:<{width}}  {r.genres}")


def cmd_tune(args: argparse.Namespace) -> None:
    from movierec.data.processed import load_processed
    from movierec.experiments.tune import tune

    _at_least_one("--trials", args.trials)
    params = _params()
    out = Path(args.out or f"tuned/{args.model}.yaml")
    summary = tune(
        params,
        load_processed(),
        args.model,
        args.trials,
        out,
        args.timeout,
        storage=args.storage,
        study_name=args.study,
        resume=args.resume,
    )
    print(
        f"{args.model}: best {summary['objective']} {summary['best_value']:.4f} after "
        f"{summary['trials']} trials of study {summary['study']!r} ({summary['storage']}) "
        f"-> {out}\napply with: {summary['command']}"
    )


def cmd_bench(args: argparse.Namespace) -> None:
    import os

    from movierec.experiments.bench import run_bench, table, write_bench

    if args.scale:
        from movierec.experiments.scale import (
            SIZES,
            merge_records,
            parse_sizes,
            run_scale,
            scale_table,
            write_scale,
        )

        sizes = parse_sizes(args.sizes) if args.sizes else list(SIZES)
        out = Path(args.out or "metrics/scale.json")
        record_path = out.with_suffix(".json")
        earlier = None
        if args.merge and record_path.is_file():
            earlier = _read_yaml(str(record_path))  # JSON is YAML
            if not {"sizes", "rows"} <= set(earlier):
                raise ConfigError(f"{record_path}: not a `bench --scale` record; drop --merge")

        def save(record: dict) -> dict:
            record = merge_records(earlier, record) if earlier else record
            write_scale(record, out)
            return record

        record = run_scale(
            Path.cwd(),
            sizes,
            args.models,
            profile=args.profile,
            on_size=save,
            max_hours=args.max_hours,
        )
        print(scale_table(save(record)), end="")
        return
    mirror = args.mirror or os.environ.get("MOVIELENS_MIRROR") or ""
    overrides = _read_yaml(args.overrides) if args.overrides else None
    if args.profile:
        from movierec.config.params import merge_params

        overrides = merge_params(overrides or {}, {"data": {"profile": args.profile}})
    if args.max_hours is not None:
        from movierec.config.params import merge_params
        from movierec.experiments.bench import budget_overrides

        overrides = merge_params(overrides or {}, budget_overrides(args.max_hours))
    record = run_bench(Path.cwd(), args.dataset, mirror, overrides, args.models)
    write_bench(
        record,
        Path(args.out or "metrics/bench.json"),
        Path(args.markdown) if args.markdown else None,
    )
    print(table(record), end="")


def cmd_check_repro(args: argparse.Namespace) -> None:
    from movierec.experiments.reprocheck import check_repro

    code = check_repro(Path(args.tolerance), args.rev, run=not args.no_run)
    if code:
        raise SystemExit(code)


def cmd_check_lock(args: argparse.Namespace) -> None:
    from movierec.pipeline.lockcheck import check_lock, report

    problems = check_lock()
    if args.verbose:
        for line in problems:
            print(f"  {line}")
    print(report(problems))
    if problems:
        raise SystemExit(1)


def cmd_check_params(args: argparse.Namespace) -> None:
    from movierec.pipeline.params import load_params

    load_params()  # every section, every family's block and the active profile
    print("check-params: params.yaml and the active profile are valid")


def cmd_compare(args: argparse.Namespace) -> None:
    from movierec.experiments.compare import compare, compare_models

    if not 100 <= args.bootstrap <= 100_000:  # beyond, the p-values move by < 0.001
        raise ConfigError(f"--bootstrap must be between 100 and 100000 (got {args.bootstrap})")
    if args.models:
        if args.a is not None:
            raise ConfigError("compare: give two revisions, or --models A B (not both)")
        from movierec.config.sections import eval_section

        a, b = args.models
        text = compare_models(a, b, eval_section(_params()).k[0], n_boot=args.bootstrap)
    elif args.a is None:
        raise ConfigError("compare: name a revision to compare with (e.g. HEAD), or --models A B")
    else:
        text = compare(args.a, args.b, n_boot=args.bootstrap)
    if args.out:
        from movierec.store.files import write_text

        write_text(Path(args.out), text)
    print(text, end="")


def cmd_repeat(args: argparse.Namespace) -> None:
    from movierec.experiments.repeats import parse_sweep, run_sweep, write_aggregate

    key, values = parse_sweep(args.sweep)
    names = run_sweep(key, values, args.set or [])
    print(write_aggregate(names, Path(args.out)), end="")


def cmd_aggregate(args: argparse.Namespace) -> None:
    from movierec.experiments.repeats import write_aggregate

    if len(args.runs) < 2:
        raise ConfigError("aggregate: name at least two experiments or revisions")
    print(write_aggregate(args.runs, Path(args.out)), end="")


LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


SERVE_ENV = "MOVIEREC_SERVE"  # --models and --watch, handed to each worker process


def serve_worker_app():
    """What each worker of ``movierec serve --workers N`` runs (uvicorn imports it by
    name): the models loaded in the worker, the files watched. A load that fails is one
    line and exit 3, which uvicorn reads as "failed to start" and stops."""
    from movierec.errors import MovierecError
    from movierec.serve.api import Served, create_app

    _one_compute_thread()
    settings = json.loads(os.environ.get(SERVE_ENV, "{}"))
    try:
        served = Served.load(_params(), settings.get("models"))
    except MovierecError as err:  # the guarded load: every damaged file is one of these
        line = str(err).splitlines()[0]
        if settings.get("failures"):  # the parent says it once, and exits 1
            Path(settings["failures"]).write_text(line + "\n")
        else:
            print(f"movierec: {line}", file=sys.stderr)
        raise SystemExit(3) from None  # uvicorn: "failed to start", stop every worker
    return create_app(served, _params, settings.get("watch") or None, tuple(settings["hosts"]))


def _one_compute_thread() -> None:
    """One thread for torch and the BLAS under numpy: a request is one small product, and
    a BLAS pool's idle threads spin on the cores the other requests (and workers) need
    (ml-100k, two workers: 1,000 requests/s with the default pools, 1,760 with one)."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn  # deferred: the server's libraries load only for `serve`

    from movierec.serve.api import Served, create_app
    from movierec.serve.http import PROTOCOL

    _one_compute_thread()

    if not args.host.strip():
        raise ConfigError(
            "--host is empty; give an address to bind: 127.0.0.1 (this machine only, the "
            "default) or 0.0.0.0 (every address)"
        )
    if not 1 <= args.port <= 65535:
        raise ConfigError(f"--port must be between 1 and 65535 (got {args.port})")
    if not 1 <= args.workers <= 64:
        raise ConfigError(f"--workers must be between 1 and 64 (got {args.workers})")
    if not (math.isfinite(args.watch) and 0 <= args.watch <= 86400):
        raise ConfigError(f"--watch must be 0 (off) or up to 86400 seconds (got {args.watch:g})")
    _check_port_free(args.host, args.port)
    params = _params()
    if args.workers > 1:  # each worker loads; what can be checked without loading, here
        _, names = Served.check(args.models)
        described = (params.data.dataset, len(names))
    else:
        served = Served.load(params, args.models)
        described = (served.data.meta["dataset"], len(served.models))
    if args.host not in LOCAL_HOSTS:
        print(
            f"serve: listening on {args.host}, reachable from other machines (the default, "
            "127.0.0.1, is this machine only)",
            file=sys.stderr,
        )
    dataset, count = described
    print(
        f"serving {count} model{'s' if count != 1 else ''} of {dataset} on "
        f"http://{args.host}:{args.port} (JSON API under /api"
        f"{f'; {args.workers} workers, each loading them' if args.workers > 1 else ''})",
        flush=True,
    )

    def stopped(signum, frame) -> None:  # uvicorn shuts down, then hands the signal on
        print("serve: stopped", file=sys.stderr)
        raise SystemExit(0)

    # no proxy in front (127.0.0.1 by default) and no access log: less per request;
    # the HTTP parser's own refusals answer JSON like the API's
    quiet = {"log_level": "warning", "access_log": False, "proxy_headers": False, "http": PROTOCOL}
    hosts = tuple(args.allow_host or ())
    if args.workers > 1:  # processes: uvicorn spreads connections and restarts a dead one
        with tempfile.TemporaryDirectory(prefix="movierec-serve-") as scratch:
            failures = Path(scratch) / "failed"
            os.environ[SERVE_ENV] = json.dumps(
                {
                    "models": args.models,
                    "watch": args.watch,
                    "hosts": hosts,
                    "failures": str(failures),
                }
            )
            uvicorn.run(
                "movierec.cli:serve_worker_app",
                factory=True,
                host=args.host,
                port=args.port,
                workers=args.workers,
                **quiet,
            )
            if failures.is_file():  # a worker could not load: uvicorn stopped them all
                raise ServeFailed(f"not serving: {failures.read_text().strip()}")
        return
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, stopped)
    app = create_app(served, _params, args.watch or None, hosts)
    uvicorn.run(app, host=args.host, port=args.port, **quiet)


class ServeFailed(ConfigError):
    """The server could not start or keep serving (exit 1, one line)."""


def _check_port_free(host: str, port: int) -> None:
    """Bind and release the port first: one line naming it when it is taken, instead of
    "serving ... on" followed by uvicorn's ``[Errno 98]``."""
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        raise ConfigError(f"--host {host!r} is not an address or a name this machine knows") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as err:
            reason = "already in use (another server?)" if err.errno == errno.EADDRINUSE else err.strerror
            raise ConfigError(
                f"--port {port} on {host}: {reason}; stop it or pick another with --port"
            ) from None


def _help_text(command: str) -> str:
    """``movierec COMMAND --help`` as a page shows it (``movierec`` alone: the overview),
    wrapped at 88 columns whatever the terminal, so the page is the same everywhere."""
    import os

    os.environ["COLUMNS"] = "88"
    parser = build_parser()
    if command != "movierec":
        parser = next(
            a for a in parser._subparsers._group_actions if isinstance(a, argparse._SubParsersAction)
        ).choices[command]
    return "```text\n" + parser.format_help().rstrip() + "\n```"


def cmd_docs(args: argparse.Namespace) -> None:
    from movierec.experiments.tables import rewrite_tables, stale_tables

    extra = {"help": _help_text}
    if args.check:
        stale, compared = stale_tables(Path("."), extra)
        if not compared:
            raise ConfigError(
                "docs --check: no generated table in README.md or docs/ here; run it in the "
                "project's folder"
            )
        if stale:
            raise ConfigError(
                f"{len(stale)} table(s) disagree with their files ({stale[0]}, ...): "
                "run `movierec docs` and commit the pages"
            )
        print(f"all {compared} generated tables in README.md and docs/ match their files")
        return
    changed = rewrite_tables(Path("."), extra)
    print("\n".join(f"rewrote {page}" for page in changed) or "every table was up to date")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="movierec", description="Reproducible movie recommendation on MovieLens."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for name, text in (
        ("fingerprint", "fingerprint the source files each pipeline step runs (data/code)"),
        ("profiles", "resolve the active profiles.yaml entry into data/profile.json"),
        ("download", "fetch and verify data.dataset into data/raw"),
        ("preprocess", "parse, reindex and split into data/processed"),
        ("embed", "train and score word2vec movie vectors"),
        ("neighbours", "the lists of similar movies served, chosen on val (metrics/neighbours.json)"),
        ("insight", "t-SNE maps and hidden-unit reports of the trained models"),
        ("ensemble", "blend the rating models' predictions (fitted on val)"),
        ("ensemble_topn", "blend every model's rankings (weights fitted on val NDCG)"),
        ("significance", "paired tests between models on per-user test values"),
        ("report", "write the leaderboard from metrics/details"),
    ):
        sub.add_parser(name, help=text).set_defaults(func=_step(name))
    from movierec.pipeline.steps import ONE_ARGUMENT

    for name, text, what in (
        ("train", "train one model", "model name, e.g. mf_bias"),
        ("evaluate", "evaluate one model", "model name, e.g. mf_bias"),
        ("custom", "fingerprint one custom file (DVC tracks it)", "ratings, items or users"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("argument", metavar=ONE_ARGUMENT[name], help=what)
        p.set_defaults(func=_step(name))

    p = sub.add_parser("recommend", help="top unseen movies for a user, with titles")
    p.add_argument("--user", required=True, help="the user's original id in the data set")
    p.add_argument("-k", type=int, default=20, help="how many movies (default 20)")
    p.add_argument(
        "--model", help="a trained model (default: the best validation NDCG on the leaderboard)"
    )
    p.set_defaults(func=cmd_recommend)

    p = sub.add_parser("predict", help="predicted rating of one movie for one user")
    p.add_argument("--user", required=True, help="the user's original id")
    p.add_argument("--movie", required=True, help="the movie's original id")
    p.add_argument("--model", help="a trained rating model (default: the best validation RMSE)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("similar", help="the movies most like one movie (co-rated lists or vectors)")
    p.add_argument("title", nargs="?", help='title, case-insensitive, e.g. "Toy Story (1995)"')
    p.add_argument("--movie-id", help="the movie's original id instead of a title")
    p.add_argument("-k", type=int, default=6, help="how many movies (default 6)")
    p.add_argument(
        "--model",
        default="co_rated",
        help="co_rated (default: the neighbours stage's lists) or a trained model with movie "
        "vectors (word2vec, mf_bias, ...)",
    )
    p.set_defaults(func=cmd_similar)

    p = sub.add_parser(
        "tune", help="Optuna search of one model's hyper-parameters (val RMSE or val NDCG)"
    )
    p.add_argument("--model", required=True, help="model name with a space under tune.spaces")
    p.add_argument("--trials", type=int, default=20, help="trials this worker runs (default 20)")
    p.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    p.add_argument("--out", help="YAML to write (default tuned/<model>.yaml)")
    p.add_argument(
        "--storage",
        help="where the study lives: a journal file (default data/tune/studies.journal) or a "
        "database URL (sqlite:///..., postgresql://..., mysql://...) shared by several machines",
    )
    p.add_argument("--study", help="study name (default <model>-<dataset>)")
    p.add_argument(
        "--resume", action="store_true", help="continue the stored study, or join it as a worker"
    )
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("bench", help="time and score every model on one data set")
    p.add_argument("--dataset", default="ml-100k", help="a release name, or ml-1m-custom")
    p.add_argument("--mirror", help="folder with the archives (default: $MOVIELENS_MIRROR)")
    p.add_argument(
        "--overrides", help="YAML merged over params.yaml (profiles.yaml applies by itself)"
    )
    p.add_argument("--models", nargs="+", help="default: train.models")
    p.add_argument("--profile", help="a profiles.yaml entry to apply (e.g. ml-25m with --scale)")
    p.add_argument(
        "--out",
        help="JSON record to write (default metrics/bench.json; --scale: metrics/scale.json)",
    )
    p.add_argument(
        "--scale",
        action="store_true",
        help="cost growth: the models on synthetic data of each --sizes, MovieLens-shaped; "
        "writes metrics/scale.{json,csv,md} (the csv is a log-log DVC plot)",
    )
    p.add_argument("--sizes", help="with --scale: ratings per run (default 100k,1M,5M,25M)")
    p.add_argument(
        "--merge",
        action="store_true",
        help="with --scale: keep the rows already in --out for the sizes and families "
        "this run does not measure (fill a long column family by family)",
    )
    p.add_argument(
        "--max-hours",
        type=float,
        help="train.max_hours and evaluate.max_hours for every family: a stage projected "
        "to take longer is recorded as refused, with its projection",
    )
    p.add_argument("--markdown", help="also write the table here")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser(
        "compare", help="metric changes between two revisions, each tested for significance"
    )
    p.add_argument("a", nargs="?", help="git revision or DVC experiment name (the baseline)")
    p.add_argument("b", nargs="?", default="workspace", help="the other side (default: workspace)")
    p.add_argument("--bootstrap", type=int, default=2000, help="resamples (default 2000)")
    p.add_argument(
        "--models",
        nargs=2,
        metavar=("A", "B"),
        help="compare two models of this workspace instead (B against A, one table)",
    )
    p.add_argument("--out", help="also write the table (markdown) here")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser(
        "repeat", help="one DVC experiment per fold or seed, then aggregate (mean, sd, 95%% CI)"
    )
    p.add_argument("sweep", help="KEY=V1,V2,...: e.g. data.split.fold=u1,u2,u3,u4,u5 or seed=1,2,3")
    p.add_argument("-S", "--set", action="append", help="another param for every run (repeatable)")
    p.add_argument("--out", default="metrics/compare", help="writes OUT.json and OUT.md")
    p.set_defaults(func=cmd_repeat)

    p = sub.add_parser("aggregate", help="mean, sd and 95%% CI of test metrics over runs")
    p.add_argument("runs", nargs="+", help="DVC experiment names or git revisions")
    p.add_argument("--out", default="metrics/compare", help="writes OUT.json and OUT.md")
    p.set_defaults(func=cmd_aggregate)

    p = sub.add_parser(
        "check-repro", help="dvc repro, then fail if a metric moved beyond repro-tolerance.yaml"
    )
    p.add_argument("--rev", default="HEAD", help="the committed metrics to compare with")
    p.add_argument("--tolerance", default="repro-tolerance.yaml", help="tolerance file")
    p.add_argument("--no-run", action="store_true", help="only compare the current workspace")
    p.set_defaults(func=cmd_check_repro)

    p = sub.add_parser(
        "check-lock",
        help="fail if the committed dvc.lock does not match the code and params (no data needed)",
    )
    p.add_argument("--verbose", action="store_true", help="list what is stale in each stage")
    p.set_defaults(func=cmd_check_lock)

    sub.add_parser(
        "check-params", help="check every section of params.yaml and the active profile"
    ).set_defaults(func=cmd_check_params)

    p = sub.add_parser("serve", help="a JSON API over the trained models (FastAPI, uvicorn)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--models", nargs="+", help="models to serve (default: every trained one)")
    p.add_argument(
        "--workers", type=int, default=1, help="processes answering (default 1; each loads the models)"
    )
    p.add_argument(
        "--watch",
        type=float,
        default=2.0,
        help="seconds between checks for retrained models, reloaded when found (0: off)",
    )
    p.add_argument(
        "--allow-host",
        action="append",
        metavar="NAME",
        help="a name browsers may use to reach the server beside localhost and IP addresses "
        "(repeatable; '*' allows any: only behind a proxy that checks)",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "docs", help="rewrite the results tables of README.md and docs/ from their files"
    )
    p.add_argument("--check", action="store_true", help="only fail if a table is stale")
    p.set_defaults(func=cmd_docs)
    return parser


def main(argv: list[str] | None = None) -> None:
    from movierec.train.kernels import pin_from_params

    pin_from_params()  # `movierec train ...` computes as its DVC stage does
    args = build_parser().parse_args(argv)
    if args.command != "serve" and hasattr(signal, "SIGPIPE"):
        # `movierec recommend ... | head`: end quietly when the reader stops, as
        # coreutils do (not the server: a client hanging up must not stop it)
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    run_cli(lambda: args.func(args))


if __name__ == "__main__":
    main(sys.argv[1:])
