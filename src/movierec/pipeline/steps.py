"""The pipeline's steps, one function per DVC stage.

``stages/<name>.py`` (what ``dvc repro`` runs) and ``movierec <name>`` (the CLI)
both call these, so there is one implementation of each stage.
``movierec.pipeline.fingerprints`` reads the imports below to fingerprint each step's code.

Each step imports what it runs inside its own function, on purpose: a step's
fingerprint then holds only the files that step runs (editing a blend reruns no
training), and ``movierec download`` does not pay for loading torch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from movierec.config.params import Params, load_raw
from movierec.pipeline.runner import run_cli, stop_with_launcher
from movierec.store.paths import CACHE, CODE, CUSTOM, DATA_STATS, PROCESSED, PROFILE, RAW

ONE_ARGUMENT = {"train": "MODEL", "evaluate": "MODEL", "custom": "ROLE"}


def load_params() -> Params:
    """params.yaml with its profile: the seed, the data and the profile checked here.

    Each other section is checked by the code that reads it, before that step does any
    work, so a step's code (and its fingerprint) holds only the sections it reads:
    ``download`` loads no model family, and ``train@ease`` no other family.
    ``movierec check-params`` checks every section at once."""
    from movierec.config.params import load_params as load_data_checked

    return load_data_checked()


def _pin_threads() -> None:
    """Same thread count on every machine (``train.threads``), so reductions sum in the
    same order and a fresh clone elsewhere reproduces the committed metrics."""
    threads = ((load_raw().get("train") or {}).get("threads")) or 0
    if isinstance(threads, int) and threads > 0:
        import torch
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(threads)
        threadpool_limits(limits=threads)


def fingerprint() -> None:
    """Fingerprint the source files each step runs (``data/code/<step>.txt``): every
    other stage depends on its step's fingerprint, so it reruns when that code changes."""
    from movierec.pipeline.fingerprints import write_fingerprints

    for line in write_fingerprints(Path("."), CODE):
        print(f"fingerprint: {line}")


def custom(role: str) -> None:
    """Fingerprint the user's file named by ``data.custom.<role>``: DVC tracks the file
    itself as this stage's dependency, so fixing it and running ``dvc repro`` reruns
    this stage, whose changed output reruns ``download``."""
    from movierec.data.download import fingerprint_custom

    params = load_params()
    record = fingerprint_custom(params.data.custom, role, CUSTOM)
    print(f"data.custom.{role}: {record['path']} (sha256 {record['sha256'][:12]}...)")


def profiles() -> None:
    """Resolve the active profile once (``data/profile.json``): the stages that read a
    profile depend on this file, not on all of ``profiles.yaml``, so editing another data
    set's profile reruns nothing, and ``dvc.lock`` (which DVC rereads and rewrites after
    every stage) does not repeat the whole file under every stage."""
    from movierec.config.params import active_profile
    from movierec.store.files import write_json

    load_params()  # the seed, the data and the profile's shape (its values: by their stages)
    name, settings = active_profile(load_raw(), Path("profiles.yaml"))
    write_json(PROFILE, {"profile": name, "settings": settings})
    print(f"profiles: active profile {name or 'none'} -> data/profile.json")


def download() -> None:
    from movierec.data.download import acquire

    params = load_params()
    source = acquire(params.data, params.seed, RAW, CACHE)
    print(f"{params.data.dataset}: raw files in data/raw/{params.data.dataset} (from {source})")


def preprocess() -> None:
    from movierec.data.preprocess import preprocess as prepare
    from movierec.store.files import write_json

    params = load_params()
    prepared = prepare(
        RAW / params.data.dataset, PROCESSED, params.data, params.seed
    )
    write_json(DATA_STATS, prepared.stats)
    s = prepared.stats
    print(
        f"{s['dataset']}: {s['users']:,} users, {s['items']:,} items, "
        f"{s['ratings']['total']:,} ratings -> data/processed"
    )


def train(model: str) -> None:
    _pin_threads()
    from movierec.models.selection import train_section
    from movierec.pipeline.train_step import train_model
    from movierec.train import distributed

    params = load_params()
    section = train_section(params)
    if section.launcher == "torchrun" and not distributed.under_torchrun():
        distributed.relaunch(["train", model], section.nproc_per_node, section.threads)
        return
    summary = train_model(model, params)
    if summary:  # rank 0 (or the only process) reports
        print(
            f"{model}: {summary['epochs']} epoch(s), best {summary['best_epoch']}, "
            f"{summary['train_seconds']:.1f}s on {summary['device']}"
        )


def _headline(name: str, result: dict) -> str:
    test = result.get("test", {})
    parts = [f"{key} {test[key]:.4f}" for key in ("rmse", "ndcg@10") if key in test]
    return f"{name}: test " + ", ".join(parts)


def evaluate(model: str) -> None:
    _pin_threads()
    from movierec.pipeline.evaluate_step import evaluate_model

    print(_headline(model, evaluate_model(model, load_params())))


def embed() -> None:
    _pin_threads()
    from movierec.pipeline.embed_step import run_embed_stage

    print(run_embed_stage(load_params()))


def neighbours() -> None:
    _pin_threads()
    from movierec.pipeline.neighbours_step import run_neighbours_stage

    print(run_neighbours_stage(load_params()))


def insight() -> None:
    _pin_threads()
    from movierec.data.processed import load_processed
    from movierec.serve.insight import run_insight

    for line in run_insight(load_params(), load_processed()):
        print(line)


def ensemble() -> None:
    _pin_threads()
    from movierec.blend.ensemble import run_ensemble

    result = run_ensemble(load_params())
    members = result["blend"]["val_rmse_members"]
    print(
        f"ensemble of {len(members)}: test RMSE {result['test']['rmse']:.4f} "
        f"(best member by val: {result['best_member']})"
    )


def ensemble_topn() -> None:
    _pin_threads()
    from movierec.blend.topn import run_topn_blend

    result = run_topn_blend(load_params())
    k = next(key for key in result["test"] if key.startswith("ndcg@"))
    used = [n for n, w in result["blend"]["weights"].items() if w > 0]
    print(
        f"ensemble_topn of {len(used)} ({', '.join(used)}): val {k} {result['val'][k]:.4f} "
        f"(cross-fitted), test {k} {result['test'][k]:.4f}"
    )


def _report_context(params: Params) -> tuple[int, str, set[str]]:
    """What the reporting stages share: the headline cut-off, the data set and split in
    words, and the models whose files another run left behind (families this run's
    ``train.models`` drops)."""
    from movierec.config.sections import eval_section
    from movierec.models.families import left_out
    from movierec.models.selection import train_section
    from movierec.store.results import read_details

    k = eval_section(params).k[0]
    where = f"{params.data.dataset}, {params.data.split.describe()}"
    names = {d["model"] for d in read_details()}
    return k, where, left_out(names, train_section(params).models)


def significance() -> None:
    from movierec.config.sections import significance_section
    from movierec.evaluation.significance import render
    from movierec.evaluation.significance import significance as paired_tests
    from movierec.store.files import write_json, write_text

    params = load_params()
    p = significance_section(params)
    k, where, stale = _report_context(params)
    result = paired_tests(k, p.bootstrap, p.alpha, params.seed, exclude=stale)
    title = f"{where}; test split"
    write_json("metrics/significance.json", result | {"title": title})
    write_text("metrics/significance.md", render(result, title))
    print(Path("metrics/significance.md").read_text(), end="")


def report() -> None:
    from movierec.evaluation.leaderboard import build_leaderboard, write_curves, write_leaderboard
    from movierec.store.files import write_json
    from movierec.store.paths import MACHINE
    from movierec.train.machine import describe_machine

    params = load_params()
    k, where, stale = _report_context(params)
    write_leaderboard(build_leaderboard(k=k, exclude=stale), f"{where}; test split shown")
    write_curves()
    write_json(MACHINE, describe_machine())  # what check-repro names on another machine
    print(Path("metrics/leaderboard.md").read_text(), end="")


def run_step(name: str, argv: Sequence[str] = ()) -> None:
    """Entry point of ``stages/<name>.py``: one line on failure, never a traceback."""
    from movierec.train.kernels import pin_from_params

    pin_from_params()  # before numpy or torch loads: the same CPU code paths everywhere
    func = globals()[name]
    if name in ONE_ARGUMENT and len(argv) != 1:
        raise SystemExit(f"usage: python stages/{name}.py {ONE_ARGUMENT[name]}")

    def step() -> None:
        if os.environ.get("DVC_STAGE"):  # run by `dvc repro`: stop if dvc is killed
            stop_with_launcher()  # inside run_cli, so a launcher already gone is one line
        func(*argv) if name in ONE_ARGUMENT else func()

    run_cli(step)
