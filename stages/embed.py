"""DVC stage `embed`: the same step as `movierec embed` (movierec.pipeline.steps)."""

from movierec.pipeline.steps import run_step

if __name__ == "__main__":
    run_step("embed")
