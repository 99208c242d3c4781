"""What ``train@<model>`` does, as a library function (the stage, the CLI and the
tests run this one copy). Evaluation lives in :mod:`movierec.pipeline.evaluate_step`, so a
change to how models are judged does not retrain them."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from movierec.config.params import Params
from movierec.config.sections import eval_section
from movierec.data.processed import Processed, load_processed
from movierec.errors import MovierecError
from movierec.evaluation.protocol import ranking_validation
from movierec.models.base import FitContext, Recommender
from movierec.models.registry import check_known, create
from movierec.models.selection import train_section
from movierec.pipeline.params import check_model_sections
from movierec.store.curves import CurveLog
from movierec.store.files import atomic_dir, write_json
from movierec.store.paths import MODELS_DIR, PROCESSED, REFIT_DIR, TRAIN_METRICS
from movierec.store.timings import record_timings
from movierec.train import distributed


def _check_inputs(model: Recommender, data: Processed) -> None:
    if "sequences" in model.needs and not data.meta.get("has_timestamps"):
        raise MovierecError(
            f"{model.name} needs the order of each user's ratings, but {data.meta['dataset']} has no "
            f"timestamps; remove {model.name} from train.models in params.yaml"
        )


def train_model(
    name: str, params: Params, processed: Path = PROCESSED
) -> dict[str, Any]:
    """Fit one model; write its state to ``data/models/<name>`` and curves to ``metrics/train/<name>``.

    Under ``torchrun`` every rank trains (data parallel) and rank 0 alone writes; the
    returned summary is empty on the other ranks."""
    check_known(name)
    section = train_section(params)
    check_model_sections(params)
    model = create(name, params)  # validates models.<name> before any work
    protocol = eval_section(params)
    device = distributed.device_for(section.device)
    world = distributed.setup(device)
    try:
        if section.threads:  # the node's threads are shared by its ranks
            torch.set_num_threads(max(1, section.threads // world.local_size))
        data = load_processed(processed)
        _check_inputs(model, data)
        ctx = FitContext(
            seed=params.seed,
            device=device,
            amp=section.amp,
            rank_k=protocol.k[0],
            threshold=protocol.threshold,
            threads=section.threads,
            max_hours=section.max_hours,
            rank_validation=ranking_validation,
        )
        refit = section.refit and model.refits()
        if world.is_main:
            return _fit_and_write(
                name, model, data, ctx, refit=create(name, params) if refit else None
            )
        if model.data_parallel:  # the others are fitted by rank 0 alone
            report = model.fit(data.for_training(), replace(ctx, progress=False))
            if refit:
                create(name, params).fit(*_refit_inputs(data, ctx, report.best_epoch))
        return {}
    finally:
        distributed.teardown()


def _refit_inputs(data: Processed, ctx: FitContext, epochs: int) -> tuple[Processed, FitContext]:
    """A refit's data (val folded into train) and context (the selected epochs, no curve)."""
    return data.with_val_in_train().for_training(), replace(
        ctx, epochs=max(1, epochs), log_epoch=None, progress=False
    )


def _fit_and_write(
    name: str,
    model: Recommender,
    data: Processed,
    ctx: FitContext,
    refit: Recommender | None = None,
) -> dict[str, Any]:
    """Fit with the learning curves logged (:class:`CurveLog`); write model and curves atomically.

    ``fit.json`` (hashed by DVC) holds only what a rerun reproduces: epochs, the best
    epoch, the device and the data's fingerprint; seconds go to ``data/timings``.
    With ``refit`` (``train.refit``), that second copy is then fitted on train + val for
    the epochs selected on val and saved in ``<model>/refit``: evaluation reports test
    with it and val (what the blends fit on) with the first."""
    with atomic_dir(TRAIN_METRICS / name) as live_dir:
        live = CurveLog(live_dir)

        def log_epoch(entry: dict[str, float]) -> None:
            for key, value in entry.items():  # seconds stay out of git
                if key not in ("epoch", "seconds") and value is not None and math.isfinite(value):
                    live.log_metric(key, value)
            live.next_step()

        report = model.fit(data.for_training(), replace(ctx, log_epoch=log_epoch))
        fit = {
            "epochs": report.epochs,
            "best_epoch": report.best_epoch,
            "device": report.device,
        }
        live.summary.update({"epochs": report.epochs, "best_epoch": report.best_epoch})
        live.close()
        refit_seconds = 0.0
        if refit is not None:
            print(f"  refit on train + val: {report.best_epoch} epoch(s)", flush=True)
            refit_seconds = refit.fit(*_refit_inputs(data, ctx, report.best_epoch)).train_seconds
            fit["refit_epochs"] = report.best_epoch
        with atomic_dir(MODELS_DIR / name) as model_dir:
            model.save(model_dir)
            write_json(model_dir / "fit.json", fit | {"data": data.fingerprint()})
            if refit is not None:
                refit.save(model_dir / REFIT_DIR)
    seconds = {"train_seconds": report.train_seconds, "seconds_to_best": report.seconds_to_best}
    if refit is not None:
        seconds["refit_seconds"] = refit_seconds
    record_timings(name, fit | seconds)
    return fit | seconds
