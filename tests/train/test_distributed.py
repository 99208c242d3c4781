"""Data-parallel training under torchrun: two CPU processes (gloo) train like one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from movierec.config.params import ConfigError
from movierec.train.distributed import World
from movierec.train.trainer import _batches, _data_parallel


def _set_train(project: Path, **values) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"].update(values)
    (project / "params.yaml").write_text(yaml.safe_dump(params))


def _train(model: str) -> subprocess.CompletedProcess:
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "movierec", "train", model],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def _val(project: Path, model: str) -> dict:
    return json.loads((project / "metrics" / "train" / model / "metrics.json").read_text())


@pytest.mark.parametrize("model,key", [("mf_bias", "val_rmse"), ("sasrec", "val_ndcg@10")])
def test_two_gloo_processes_train_like_one_process(tiny_project, model, key):
    single = _train(model)
    assert single.returncode == 0, single.stderr
    one = _val(tiny_project, model)

    _set_train(tiny_project, launcher="torchrun", nproc_per_node=2)
    parallel = _train(model)
    assert parallel.returncode == 0, parallel.stderr
    two = _val(tiny_project, model)
    # every rank sees the same shuffled batches and trains on half of each; averaged
    # gradients make that the same optimisation up to float rounding
    assert two[key] == pytest.approx(one[key], abs=0.02)
    assert two["epochs"] == one["epochs"]
    # rank 0 alone reports and writes
    assert parallel.stdout.count(f"{model}: ") == 1
    assert (tiny_project / "data" / "models" / model / "fit.json").is_file()
    assert "Traceback" not in parallel.stderr


@pytest.mark.parametrize("model", ["bias", "sparse_fc"])
def test_a_single_process_family_is_fitted_by_rank_zero_alone(tiny_project, model):
    """bias has no Trainer; sparse_fc's full-batch L-BFGS uses it, but in one process."""
    _set_train(tiny_project, launcher="torchrun", nproc_per_node=2)
    run = _train(model)
    assert run.returncode == 0, run.stderr
    assert run.stdout.count(f"{model}: ") == 1
    assert (tiny_project / "data" / "models" / model / "fit.json").is_file()


def test_a_failing_rank_is_one_line_per_process(tiny_project):
    _set_train(tiny_project, launcher="torchrun", nproc_per_node=2)
    (tiny_project / "data" / "processed" / "ratings.parquet").unlink()
    run = _train("mf_bias")
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: torchrun: rank ")
    assert all(line.startswith("error: ") for line in lines), run.stderr


def test_rank_slices_cover_each_batch_once():
    def epoch(world: World | None = None) -> list[torch.Tensor]:
        generator = torch.Generator().manual_seed(3)
        return list(_batches(102, 10, generator, torch.device("cpu"), world))

    whole = epoch()
    per_rank = [epoch(World(rank, 3)) for rank in range(3)]
    # every rank takes the same number of steps; the 2-row tail cannot be shared by 3
    assert [len(p) for p in per_rank] == [len(whole) - 1] * 3
    for step, batch in enumerate(whole[:-1]):
        assert torch.equal(torch.cat([p[step] for p in per_rank]), batch)


def test_sparse_embeddings_are_refused_for_data_parallel_training():
    module = nn.Embedding(5, 2, sparse=True)
    with pytest.raises(ConfigError, match="sparse: false"):
        _data_parallel(module, torch.device("cpu"))


def test_launcher_is_validated(tiny_project):
    _set_train(tiny_project, launcher="mpirun")
    run = _train("bias")
    assert run.returncode == 1
    assert run.stderr.strip() == (
        "error: params.yaml: `train.launcher` must be python or torchrun (got 'mpirun')"
    )
