"""Where every artifact lands, and which stage writes it: the one table of paths.

Every module that reads or writes an artifact takes its location from here, so a
folder is renamed in one place, and a damaged file can be named with the command
that writes it again (:func:`rebuild_command`). Paths are relative to the project
root (where ``dvc.yaml`` is), as the stages run there.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# data/: DVC-tracked outputs of the stages
RAW = Path("data/raw")  # download: the release, checked against its checksums
CACHE = Path("data/cache")  # download: archives kept between runs
CUSTOM = Path("data/custom")  # custom@<role>: fingerprints of the user's own files
PROFILE = Path("data/profile.json")  # profiles: the active profile's settings
CODE = Path("data/code")  # fingerprint: one file per step, the hash of the code it runs
PROCESSED = Path("data/processed")  # preprocess: the split and its matrices
MODELS_DIR = Path("data/models")  # train@<model>: data/models/<model>/model.npz ...
REFIT_DIR = "refit"  # data/models/<name>/refit: the copy refitted on train + val
VECTORS_DIR = MODELS_DIR / "word2vec"  # embed: the movie vectors
SCORES_DIR = Path("data/scores")  # evaluate@<model>: full score rows for the blends
PREDICTIONS_DIR = Path("data/predictions")  # evaluate@<model>: val/test predictions
PER_USER = Path("data/per_user")  # evaluate@<model>: per-user values for significance
TIMINGS = Path("data/timings")  # train/evaluate: seconds, kept out of git
NEIGHBOURS_DIR = Path("data/neighbours")  # neighbours: the lists of similar movies the server keeps
ENSEMBLE_DIR = Path("data/ensemble")  # ensemble: the rating blend
TOPN_DIR = Path("data/ensemble_topn")  # ensemble_topn: the ranking blend
BLEND_DIRS = {"ensemble": ENSEMBLE_DIR, "ensemble_topn": TOPN_DIR}
TUNE_STORAGE = Path("data/tune/studies.journal")  # movierec tune: the shared Optuna studies

# metrics/: git-tracked quality figures
METRICS = Path("metrics")
DATA_STATS = METRICS / "data.json"  # preprocess: the split's sizes
TRAIN_METRICS = METRICS / "train"  # train@<model>: curves and fit summary
EVAL_METRICS = METRICS / "eval"  # evaluate@<model>: headline metrics
DETAILS = METRICS / "details"  # evaluate@<model>: every metric
EMBED_METRICS = METRICS / "embed.json"  # embed
NEIGHBOURS_METRICS = METRICS / "neighbours.json"  # neighbours: every candidate on val, the pick on test
INSIGHT = METRICS / "insight"  # insight: maps and unit reports
SIGNIFICANCE = METRICS / "significance.json"  # significance (and .md beside it)
LEADERBOARD = METRICS / "leaderboard.json"  # report (and .md beside it)
CURVES = METRICS / "curves"  # report: one table per curve (val rmse, val ndcg, train loss)
MACHINE = METRICS / "machine.json"  # report: the machine the metrics came from
COMPARE = METRICS / "compare"  # movierec compare / repeat: OUT.json and OUT.md

# Which stage writes an artifact, by where it lives: a damaged file is named with the
# command that writes it again. word2vec and the two blends have stages of their own.
_OWN_STAGE = {"word2vec": "embed", "ensemble": "ensemble", "ensemble_topn": "ensemble_topn"}
_WRITERS = (
    (re.compile(r"(?:^|/)data/processed(?:/|$)"), lambda m: "preprocess"),
    (re.compile(r"(?:^|/)data/raw(?:/|$)"), lambda m: "download"),
    (re.compile(r"(?:^|/)data/models/([^/]+)"), lambda m: _OWN_STAGE.get(m[1], f"train@{m[1]}")),
    (
        re.compile(
            r"(?:^|/)(?:data/(?:scores|predictions|per_user)|metrics/(?:details|eval))/([^/.]+)"
        ),
        lambda m: _OWN_STAGE.get(m[1], f"evaluate@{m[1]}"),
    ),
    (re.compile(r"(?:^|/)data/(ensemble_topn|ensemble)(?:/|$)"), lambda m: m[1]),
    (re.compile(r"(?:^|/)metrics/train/([^/]+)"), lambda m: f"train@{m[1]}"),
    (re.compile(r"(?:^|/)metrics/significance\."), lambda m: "significance"),
    (re.compile(r"(?:^|/)metrics/(?:leaderboard|curves)\."), lambda m: "report"),
    (re.compile(r"(?:^|/)metrics/embed\.json"), lambda m: "embed"),
    (re.compile(r"(?:^|/)(?:metrics/neighbours\.json|data/neighbours(?:/|$))"), lambda m: "neighbours"),
    (re.compile(r"(?:^|/)metrics/data\.json"), lambda m: "preprocess"),
    (re.compile(r"(?:^|/)metrics/machine\.json"), lambda m: "report"),
    (re.compile(r"(?:^|/)metrics/insight/errors\.md"), lambda m: "ensemble"),
    (re.compile(r"(?:^|/)metrics/insight(?:/|$)"), lambda m: "insight"),
)


def rebuild_command(path: str | os.PathLike[str]) -> str:
    """The command that writes ``path`` again (``dvc repro train@ease``)."""
    text = Path(path).as_posix()
    for pattern, stage in _WRITERS:
        found = pattern.search(text)
        if found:
            return f"dvc repro {stage(found)}"
    return "dvc repro"


def in_dvc_cache(path: Path) -> bool:
    """Outputs under data/ are in DVC's cache (those in metrics/, data/raw and data/code
    are not: ``cache: false``), so ``dvc checkout`` can restore them."""
    text = path.as_posix()
    return "data/" in text and not re.search(r"(?:^|/)(?:metrics|data/raw|data/code)/", text)
