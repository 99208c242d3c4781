"""DVC stage `profiles`: the same step as `movierec profiles` (movierec.pipeline.steps)."""

from movierec.pipeline.steps import run_step

if __name__ == "__main__":
    run_step("profiles")
