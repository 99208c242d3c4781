"""DVC stage `evaluate@<model>`: the same step as `movierec evaluate <model>` (movierec.pipeline.steps)."""

import sys

from movierec.pipeline.steps import run_step

if __name__ == "__main__":
    run_step("evaluate", sys.argv[1:])
