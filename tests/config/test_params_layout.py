"""`dvc exp run -S key=value` rewrites params.yaml through DVC's own params modifier; the
committed files must already be in the layout it writes, or every experiment's diff
hides its one change among hundreds of reformatted lines."""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import pytest
from dvc.utils.hydra import apply_overrides

ROOT = Path(__file__).resolve().parents[2]


def changed_lines(before: str, after: str) -> list[str]:
    diff = difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
    return [
        line
        for line in diff
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


@pytest.mark.parametrize(
    "name, override, old, new",
    [
        ("params.yaml", "models.bias.reg_user=6", "    reg_user: 5.0", "    reg_user: 6"),
        ("params.yaml", "train.models=[bias,ease]", None, None),
        ("profiles.yaml", "ml-1m.models.bpr.reg=0.004", "      reg: 0.003", "      reg: 0.004"),
    ],
)
def test_one_set_param_is_a_one_line_diff(tmp_path, name, override, old, new):
    path = tmp_path / name
    shutil.copy(ROOT / name, path)
    before = path.read_text()
    apply_overrides(path, [override])
    lines = changed_lines(before, path.read_text())
    if old is None:  # a list replaced: only its items change, the rest stays byte for byte
        assert lines and all(line[1:].lstrip().startswith(("- ", "models:")) for line in lines)
    else:
        assert lines == [f"-{old}", f"+{new}"]


@pytest.mark.parametrize("name", ["params.yaml", "profiles.yaml"])
def test_files_round_trip_through_dvcs_writer_byte_for_byte(tmp_path, name):
    path = tmp_path / name
    shutil.copy(ROOT / name, path)
    apply_overrides(path, ["++__probe__=1"])
    apply_overrides(path, ["~__probe__"])
    assert path.read_text() == (ROOT / name).read_text()
