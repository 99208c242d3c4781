"""DVC stage `embed`: the same step as `movierec embed` (movierec.steps)."""

from movierec.steps import run_step

if __name__ == "__main__":
    run_step("embed")
