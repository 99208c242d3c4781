"""Shared fixtures: tiny synthetic data and the real MovieLens mirror when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from movierec.config.params import SyntheticData, parse_params
from movierec.data.preprocess import preprocess
from movierec.data.processed import Processed, load_processed
from movierec.data.synthetic import SyntheticSet, generate, write_custom

ROOT = Path(__file__).resolve().parents[1]


def _find_mirror() -> Path | None:
    env = os.environ.get("MOVIELENS_MIRROR")
    candidates = [Path(env)] if env and "://" not in env else []
    candidates.append(ROOT.parent / "shared" / "data" / "movielens")
    for path in candidates:
        if (path / "ml-100k" / "u.data").is_file():
            return path
    return None


MIRROR = _find_mirror()
needs_mirror = pytest.mark.skipif(MIRROR is None, reason="real MovieLens mirror not available")


@pytest.fixture(scope="session")
def mirror() -> Path:
    if MIRROR is None:
        pytest.skip("real MovieLens mirror not available")
    return MIRROR


@pytest.fixture(scope="session")
def tiny_cfg() -> SyntheticData:
    return SyntheticData(n_users=60, n_items=90, n_ratings=1800, rank=4, noise=0.3, rating_step=0.5)


@pytest.fixture(scope="session")
def tiny(tiny_cfg: SyntheticData) -> SyntheticSet:
    return generate(tiny_cfg, seed=7)


@pytest.fixture(scope="session")
def tiny_processed(tmp_path_factory: pytest.TempPathFactory, tiny: SyntheticSet) -> Processed:
    """The tiny set preprocessed once (split seed 5), for tests that only read it."""
    folder = tmp_path_factory.mktemp("tiny_processed")
    write_custom(tiny, folder / "raw")
    params = parse_params({"data": {"dataset": "synthetic"}})
    preprocess(folder / "raw", folder / "processed", params.data, seed=5)
    return load_processed(folder / "processed")


@pytest.fixture(autouse=True)
def _no_ambient_mirror(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests choose their mirror explicitly; an exported one must not leak in."""
    monkeypatch.delenv("MOVIELENS_MIRROR", raising=False)


@pytest.fixture
def tiny_project(tmp_path: Path, tiny: SyntheticSet, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with processed tiny synthetic data and a params.yaml, as cwd."""
    import yaml

    from movierec.config.params import parse_params
    from movierec.data.preprocess import preprocess
    from movierec.data.synthetic import write_custom

    raw = tmp_path / "data" / "raw" / "synthetic"
    write_custom(tiny, raw)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["dataset"] = "synthetic"
    for section in params["models"].values():
        if isinstance(section, dict) and "epochs" in section:
            section["epochs"] = 2
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    parsed = parse_params(params)
    preprocess(raw, tmp_path / "data" / "processed", parsed.data, parsed.seed)
    monkeypatch.chdir(tmp_path)
    return tmp_path
