"""A tiny project with three models trained, evaluated and on a leaderboard: what the
API and browser tests serve."""

from movierec.config.params import Params
from movierec.evaluation.leaderboard import build_leaderboard, write_leaderboard
from movierec.pipeline.evaluate_step import evaluate_model
from movierec.pipeline.params import load_params
from movierec.pipeline.train_step import train_model
from movierec.store.paths import METRICS

SERVED = ("bias", "mf_bias", "ease")


def trained_project() -> Params:
    """Train and evaluate ``SERVED`` in the current (tiny) project; its params."""
    params = load_params()
    for name in SERVED:
        train_model(name, params)
        evaluate_model(name, params)
    write_leaderboard(build_leaderboard(), "tiny", METRICS)
    return params


def wait_for(condition, seconds: float = 15.0) -> bool:
    """Poll ``condition`` every 50 ms until it holds (True) or ``seconds`` pass (False)."""
    import time

    stop = time.monotonic() + seconds
    while time.monotonic() < stop:
        if condition():
            return True
        time.sleep(0.05)
    return False
