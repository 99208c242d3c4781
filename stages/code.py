"""DVC stage `code`: the same step as `movierec code` (movierec.steps)."""

from movierec.steps import run_step

if __name__ == "__main__":
    run_step("code")
