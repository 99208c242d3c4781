"""The ``movierec`` command: the pipeline's steps plus recommendations for people."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from movierec.stage import run_cli


def _params():
    from movierec.config import load_params

    return load_params()


def _step(name: str):
    """A pipeline step (``movierec.steps``): the same function its DVC stage runs."""

    def run(args: argparse.Namespace) -> None:
        from movierec import steps

        func = getattr(steps, name)
        func(args.model) if hasattr(args, "model") and name in steps.PER_MODEL else func()

    return run


def cmd_recommend(args: argparse.Namespace) -> None:
    from movierec.dataset import load_processed
    from movierec.recommend import default_model, recommend

    params = _params()
    data = load_processed()
    model = args.model or default_model("topn")
    recs = recommend(data, params, args.user, args.k, model)
    print(f"Top {len(recs)} movies for user {args.user} ({model}, {data.meta['dataset']}):")
    width = max((len(r.title) for r in recs), default=5)
    print(f"{'#':>3}  {'movie':<{width}}  {'year':>4}  score")
    for r in recs:
        year = "" if r.year is None else str(r.year)
        print(f"{r.rank:>3}  {r.title:<{width}}  {year:>4}  {r.score:9.2f}")


def cmd_predict(args: argparse.Namespace) -> None:
    from movierec.dataset import load_processed
    from movierec.recommend import default_model, predict_one

    params = _params()
    data = load_processed()
    model = args.model or default_model("rating")
    pred, actual = predict_one(data, params, args.user, args.movie, model)
    extra = f" (rated {actual:g})" if actual is not None else ""
    print(f"user {args.user}, movie {args.movie}: predicted {pred:.2f}{extra} [{model}]")


def cmd_similar(args: argparse.Namespace) -> None:
    from movierec.dataset import load_processed
    from movierec.errors import LookupFailed
    from movierec.similar import find_movie, movie_vectors, similar

    if (args.title is None) == (args.movie_id is None):
        raise LookupFailed("give a movie title or --movie-id (not both)")
    params = _params()
    data = load_processed()
    item = find_movie(data, args.title, args.movie_id)
    vectors, has = movie_vectors(args.model, data, params)
    rows = similar(data, vectors, has, item, args.k)
    print(f"Movies like {data.items['title'][item]} ({args.model}, cosine similarity):")
    width = max((len(r.title) for r in rows), default=5)
    for r in rows:
        print(f"{r.rank:>3}  {r.similarity:6.3f}  {r.title:<{width}}  {r.genres}")


def cmd_tune(args: argparse.Namespace) -> None:
    from movierec.dataset import load_processed
    from movierec.tune import tune

    params = _params()
    out = Path(args.out or f"tuned/{args.model}.yaml")
    summary = tune(params, load_processed(), args.model, args.trials, out, args.timeout)
    print(
        f"{args.model}: best val RMSE {summary['best_val_rmse']:.4f} after {summary['trials']} "
        f"trials -> {out}\napply with: {summary['command']}"
    )


def cmd_bench(args: argparse.Namespace) -> None:
    import os

    import yaml

    from movierec.bench import run_bench, table, write_bench

    mirror = args.mirror or os.environ.get("MOVIELENS_MIRROR") or ""
    overrides = yaml.safe_load(Path(args.overrides).read_text()) if args.overrides else None
    record = run_bench(Path.cwd(), args.dataset, mirror, overrides, args.models)
    write_bench(record, Path(args.out), Path(args.markdown) if args.markdown else None)
    print(table(record), end="")


def cmd_check_repro(args: argparse.Namespace) -> None:
    from movierec.reprocheck import check_repro

    code = check_repro(Path(args.tolerance), args.rev, run=not args.no_run)
    if code:
        raise SystemExit(code)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="movierec", description="Reproducible movie recommendation on MovieLens."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for name, text in (
        ("download", "fetch and verify data.dataset into data/raw"),
        ("preprocess", "parse, reindex and split into data/processed"),
        ("embed", "train and score word2vec movie vectors"),
        ("insight", "t-SNE maps and hidden-unit reports of the trained models"),
        ("ensemble", "blend the rating models' predictions (fitted on val)"),
        ("report", "write the leaderboard from metrics/details"),
    ):
        sub.add_parser(name, help=text).set_defaults(func=_step(name))
    for name, text in (("train", "train one model"), ("evaluate", "evaluate one model")):
        p = sub.add_parser(name, help=text)
        p.add_argument("model", help="model name, e.g. mf_bias")
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

    p = sub.add_parser("similar", help="the movies nearest to one movie in an embedding space")
    p.add_argument("title", nargs="?", help='title, case-insensitive, e.g. "Toy Story (1995)"')
    p.add_argument("--movie-id", help="the movie's original id instead of a title")
    p.add_argument("-k", type=int, default=6, help="how many movies (default 6)")
    p.add_argument(
        "--model",
        default="word2vec",
        help="word2vec (default) or any trained model with movie vectors (mf_bias, mlp, ...)",
    )
    p.set_defaults(func=cmd_similar)

    p = sub.add_parser("tune", help="Optuna search of one model's hyper-parameters (val RMSE)")
    p.add_argument("--model", required=True, help="model name with a space under tune.spaces")
    p.add_argument("--trials", type=int, default=20, help="number of trials (default 20)")
    p.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    p.add_argument("--out", help="YAML to write (default tuned/<model>.yaml)")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("bench", help="time and score every model on one data set")
    p.add_argument("--dataset", default="ml-100k", help="a release name, or ml-1m-custom")
    p.add_argument("--mirror", help="folder with the archives (default: $MOVIELENS_MIRROR)")
    p.add_argument(
        "--overrides", help="YAML merged over params.yaml (profiles.yaml applies by itself)"
    )
    p.add_argument("--models", nargs="+", help="default: train.models")
    p.add_argument("--out", default="metrics/bench.json", help="JSON record to write")
    p.add_argument("--markdown", help="also write the table here")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser(
        "check-repro", help="dvc repro, then fail if a metric moved beyond repro-tolerance.yaml"
    )
    p.add_argument("--rev", default="HEAD", help="the committed metrics to compare with")
    p.add_argument("--tolerance", default="repro-tolerance.yaml", help="tolerance file")
    p.add_argument("--no-run", action="store_true", help="only compare the current workspace")
    p.set_defaults(func=cmd_check_repro)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    run_cli(lambda: args.func(args))


if __name__ == "__main__":
    main(sys.argv[1:])
