"""DVC stage `preprocess`: the same step as `movierec preprocess` (movierec.steps)."""

from movierec.steps import run_step

if __name__ == "__main__":
    run_step("preprocess")
