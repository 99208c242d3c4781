"""DVC stage `evaluate@<model>`: rating and full-ranking top-N metrics on val and test."""

import argparse

from movierec.config import load_params
from movierec.pipeline import evaluate_model
from movierec.stage import run_cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", help="a model name from train.models")
    args = parser.parse_args()
    result = evaluate_model(args.model, load_params())
    test = result.get("test", {})
    print(
        f"{args.model}: test RMSE {test.get('rmse', float('nan')):.4f}, "
        f"NDCG@10 {test.get('ndcg@10', float('nan')):.4f}"
    )


if __name__ == "__main__":
    run_cli(main)
