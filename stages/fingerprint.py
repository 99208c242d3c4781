"""DVC stage `fingerprint`: the same step as `movierec fingerprint` (movierec.pipeline.steps)."""

from movierec.pipeline.steps import run_step

if __name__ == "__main__":
    run_step("fingerprint")
