"""DVC stage `significance`: the same step as `movierec significance` (movierec.pipeline.steps)."""

from movierec.pipeline.steps import run_step

if __name__ == "__main__":
    run_step("significance")
