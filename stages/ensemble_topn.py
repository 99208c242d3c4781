"""DVC stage `ensemble_topn`: the same step as `movierec ensemble_topn` (movierec.steps)."""

from movierec.steps import run_step

if __name__ == "__main__":
    run_step("ensemble_topn")
