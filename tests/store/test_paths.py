"""The one table of artifact paths agrees with dvc.yaml: every output a stage declares
is named, when damaged, with the command that writes it again."""

from pathlib import Path

import pytest
import yaml

from movierec.store import paths
from movierec.store.paths import rebuild_command

ROOT = Path(__file__).resolve().parents[2]
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _outputs(stage: dict) -> list[str]:
    body = stage.get("do", stage)
    found = []
    for kind in ("outs", "metrics", "plots"):
        for entry in body.get(kind) or []:
            found.append(next(iter(entry)) if isinstance(entry, dict) else entry)
    return found


CASES = [
    (name, out.replace("${item}", "mf").replace("${data.dataset}", "ml-100k"))
    for name, stage in STAGES.items()
    if name not in ("fingerprint", "custom", "profiles")
    for out in _outputs(stage)
]


@pytest.mark.parametrize(("stage", "out"), CASES, ids=[f"{s}:{o}" for s, o in CASES])
def test_every_declared_output_names_its_own_stage(stage, out):
    expected = f"{stage}@mf" if "foreach" in STAGES[stage] else stage
    assert rebuild_command(out) == f"dvc repro {expected}"
    assert rebuild_command(f"{out}/inner.json") == f"dvc repro {expected}"


def test_the_table_spells_the_paths_dvc_yaml_declares():
    declared = {out for _, out in CASES}
    for path in (paths.PROCESSED, paths.SIGNIFICANCE, paths.LEADERBOARD, paths.MACHINE):
        assert path.as_posix() in declared or any(d.startswith(path.as_posix()) for d in declared)
    assert (paths.MODELS_DIR / "mf").as_posix() in declared
    assert (paths.TRAIN_METRICS / "mf").as_posix() in declared
    assert (paths.EVAL_METRICS / "mf.json").as_posix() in declared
