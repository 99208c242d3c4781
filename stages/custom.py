"""DVC stage `custom@<role>`: the same step as `movierec custom <role>` (movierec.steps)."""

import sys

from movierec.steps import run_step

if __name__ == "__main__":
    run_step("custom", sys.argv[1:])
