"""DVC stage `download`: fetch and verify the raw files of `data.dataset`."""

from pathlib import Path

from movierec.config import load_params
from movierec.data.download import acquire
from movierec.stage import run_cli


def main() -> None:
    params = load_params()
    source = acquire(params.data, params.seed, Path("data/raw"), Path("data/cache"))
    print(f"{params.data.dataset}: raw files in data/raw/{params.data.dataset} (from {source})")


if __name__ == "__main__":
    run_cli(main)
