"""DVC stage `ensemble`: the same step as `movierec ensemble` (movierec.pipeline.steps)."""

from movierec.pipeline.steps import run_step

if __name__ == "__main__":
    run_step("ensemble")
