"""DVC stage `train@<model>`: the same step as `movierec train <model>` (movierec.steps)."""

import sys

from movierec.steps import run_step

if __name__ == "__main__":
    run_step("train", sys.argv[1:])
