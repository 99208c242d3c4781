"""DVC stage `report`: gather metrics/eval/*.json into the leaderboard."""

from pathlib import Path

from movierec.config import load_params
from movierec.pipeline import build_leaderboard, write_leaderboard
from movierec.stage import run_cli


def main() -> None:
    params = load_params()
    rows = build_leaderboard()
    write_leaderboard(rows, params.data.dataset)
    print(Path("metrics/leaderboard.md").read_text())


if __name__ == "__main__":
    run_cli(main)
