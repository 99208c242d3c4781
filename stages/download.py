"""DVC stage `download`: the same step as `movierec download` (movierec.pipeline.steps)."""

from movierec.pipeline.steps import run_step

if __name__ == "__main__":
    run_step("download")
