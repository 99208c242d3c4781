"""DVC stage `significance`: the same step as `movierec significance` (movierec.steps)."""

from movierec.steps import run_step

if __name__ == "__main__":
    run_step("significance")
