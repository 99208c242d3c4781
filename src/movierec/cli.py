"""The ``movierec`` command: the pipeline's steps plus recommendations for people."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from movierec.stage import run_cli


def _params():
    from movierec.config import load_params

    return load_params()


def cmd_download(args: argparse.Namespace) -> None:
    from movierec.data.download import acquire

    params = _params()
    source = acquire(params.data, params.seed, Path("data/raw"), Path("data/cache"))
    print(f"{params.data.dataset}: data/raw/{params.data.dataset} (from {source})")


def cmd_preprocess(args: argparse.Namespace) -> None:
    from movierec.data.preprocess import preprocess
    from movierec.io import write_json

    params = _params()
    prepared = preprocess(
        Path("data/raw") / params.data.dataset, Path("data/processed"), params.data, params.seed
    )
    write_json("metrics/data.json", prepared.stats)
    print(f"{prepared.stats['ratings']['total']:,} ratings -> data/processed")


def cmd_train(args: argparse.Namespace) -> None:
    from movierec.pipeline import train_model

    summary = train_model(args.model, _params())
    print(
        f"{args.model}: best epoch {summary['best_epoch']} of {summary['epochs']}, "
        f"{summary['train_seconds']:.1f}s on {summary['device']}"
    )


def cmd_evaluate(args: argparse.Namespace) -> None:
    from movierec.pipeline import evaluate_model

    result = evaluate_model(args.model, _params())
    print(
        f"{args.model}: test RMSE {result['test']['rmse']:.4f}, NDCG@10 {result['test']['ndcg@10']:.4f}"
    )


def cmd_recommend(args: argparse.Namespace) -> None:
    from movierec.dataset import load_processed
    from movierec.recommend import default_model, recommend

    params = _params()
    data = load_processed()
    model = args.model or default_model()
    recs = recommend(data, params, args.user, args.k, model)
    print(f"Top {len(recs)} movies for user {args.user} ({model}, {data.meta['dataset']}):")
    width = max((len(r.title) for r in recs), default=5)
    print(f"{'#':>3}  {'movie':<{width}}  {'year':>4}  predicted")
    for r in recs:
        year = "" if r.year is None else str(r.year)
        print(f"{r.rank:>3}  {r.title:<{width}}  {year:>4}  {r.score:9.2f}")


def cmd_predict(args: argparse.Namespace) -> None:
    from movierec.dataset import load_processed
    from movierec.recommend import default_model, predict_one

    params = _params()
    data = load_processed()
    model = args.model or default_model()
    pred, actual = predict_one(data, params, args.user, args.movie, model)
    extra = f" (rated {actual:g})" if actual is not None else ""
    print(f"user {args.user}, movie {args.movie}: predicted {pred:.2f}{extra} [{model}]")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="movierec", description="Reproducible movie recommendation on MovieLens."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("download", help="fetch and verify data.dataset into data/raw").set_defaults(
        func=cmd_download
    )
    sub.add_parser("preprocess", help="parse, reindex and split into data/processed").set_defaults(
        func=cmd_preprocess
    )
    for name, func, text in (
        ("train", cmd_train, "train one model"),
        ("evaluate", cmd_evaluate, "evaluate one model"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("model", help="model name, e.g. mf_bias")
        p.set_defaults(func=func)

    p = sub.add_parser("recommend", help="top unseen movies for a user, with titles")
    p.add_argument("--user", required=True, help="the user's original id in the data set")
    p.add_argument("-k", type=int, default=20, help="how many movies (default 20)")
    p.add_argument("--model", help="a trained model (default: the leaderboard's best)")
    p.set_defaults(func=cmd_recommend)

    p = sub.add_parser("predict", help="predicted rating of one movie for one user")
    p.add_argument("--user", required=True, help="the user's original id")
    p.add_argument("--movie", required=True, help="the movie's original id")
    p.add_argument("--model", help="a trained model (default: the leaderboard's best)")
    p.set_defaults(func=cmd_predict)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    run_cli(lambda: args.func(args))


if __name__ == "__main__":
    main(sys.argv[1:])
