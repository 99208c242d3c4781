"""DVC stage `custom@<role>`: the same step as `movierec custom <role>` (movierec.pipeline.steps)."""

import sys

from movierec.pipeline.steps import run_step

if __name__ == "__main__":
    run_step("custom", sys.argv[1:])
