"""DVC stage `report`: the same step as `movierec report` (movierec.steps)."""

from movierec.steps import run_step

if __name__ == "__main__":
    run_step("report")
