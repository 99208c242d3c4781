"""DVC stage `insight`: the same step as `movierec insight` (movierec.steps)."""

from movierec.steps import run_step

if __name__ == "__main__":
    run_step("insight")
