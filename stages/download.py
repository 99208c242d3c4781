"""DVC stage `download`: the same step as `movierec download` (movierec.steps)."""

from movierec.steps import run_step

if __name__ == "__main__":
    run_step("download")
