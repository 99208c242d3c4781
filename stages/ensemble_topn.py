"""DVC stage `ensemble_topn`: the same step as `movierec ensemble_topn` (movierec.pipeline.steps)."""

from movierec.pipeline.steps import run_step

if __name__ == "__main__":
    run_step("ensemble_topn")
