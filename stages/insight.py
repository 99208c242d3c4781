"""DVC stage `insight`: the same step as `movierec insight` (movierec.pipeline.steps)."""

from movierec.pipeline.steps import run_step

if __name__ == "__main__":
    run_step("insight")
