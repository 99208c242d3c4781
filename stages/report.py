"""DVC stage `report`: the same step as `movierec report` (movierec.pipeline.steps)."""

from movierec.pipeline.steps import run_step

if __name__ == "__main__":
    run_step("report")
