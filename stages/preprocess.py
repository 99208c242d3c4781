"""DVC stage `preprocess`: the same step as `movierec preprocess` (movierec.pipeline.steps)."""

from movierec.pipeline.steps import run_step

if __name__ == "__main__":
    run_step("preprocess")
