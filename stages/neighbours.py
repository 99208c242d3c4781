"""DVC stage `neighbours`: the same step as `movierec neighbours` (movierec.pipeline.steps)."""

from movierec.pipeline.steps import run_step

if __name__ == "__main__":
    run_step("neighbours")
