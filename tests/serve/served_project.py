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
