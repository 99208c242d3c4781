"""DVC stage `preprocess`: parse, reindex, split; write data/processed and metrics/data.json."""

from pathlib import Path

from movierec.config import load_params
from movierec.data.preprocess import preprocess
from movierec.io import write_json
from movierec.stage import run_cli


def main() -> None:
    params = load_params()
    prepared = preprocess(
        Path("data/raw") / params.data.dataset, Path("data/processed"), params.data, params.seed
    )
    write_json("metrics/data.json", prepared.stats)
    s = prepared.stats
    print(
        f"{s['dataset']}: {s['users']:,} users, {s['items']:,} items, "
        f"{s['ratings']['total']:,} ratings -> data/processed"
    )


if __name__ == "__main__":
    run_cli(main)
