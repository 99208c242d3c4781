"""DVC stage `train@<model>`: fit one model family on data/processed."""

import argparse

from movierec.config import load_params
from movierec.pipeline import train_model
from movierec.stage import run_cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", help="a model name from train.models")
    args = parser.parse_args()
    summary = train_model(args.model, load_params())
    print(
        f"{args.model}: {summary['epochs']} epoch(s), best {summary['best_epoch']}, "
        f"{summary['train_seconds']:.1f}s on {summary['device']}"
    )


if __name__ == "__main__":
    run_cli(main)
