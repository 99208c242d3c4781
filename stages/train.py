"""DVC stage `train@<model>`: the same step as `movierec train <model>` (movierec.pipeline.steps)."""

import sys

from movierec.pipeline.steps import run_step

if __name__ == "__main__":
    run_step("train", sys.argv[1:])
