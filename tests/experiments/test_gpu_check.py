"""The GPU check (bench/gpu_check.sh): one line and exit 0 without a GPU; its GPU path
exercised on torch's ``meta`` device, which has every tensor's shape but no data, so a
family runs until its first data-dependent kernel."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import gpu_check  # noqa: E402


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: the check would run")
def test_without_a_gpu_the_check_says_so_in_one_line():
    proc = subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu_check.sh")], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 1 and proc.stdout.startswith("gpu_check: no CUDA GPU")


def test_the_check_covers_every_torch_family():
    names = gpu_check.torch_families()
    assert {"mf", "mlp", "autorec_item", "sparse_fc", "wide_deep", "rnn", "bst"} <= set(names)
    assert {"bpr", "sasrec"} <= set(names) and not {"ease", "ials", "bias"} & set(names)


@pytest.mark.parametrize("name", gpu_check.torch_families())
def test_each_family_runs_on_the_device_it_is_given_until_a_kernel(name, tiny_processed):
    """On ``meta`` every family fails only at a kernel that needs real data (``.item()``,
    ``nonzero``, a fused optimizer step): never at a tensor left on the CPU, which on a
    GPU would fail or copy host to device every batch."""
    from movierec.config.params import parse_params
    from movierec.models.base import FitContext
    from movierec.models.registry import create

    model = create(name, parse_params({"data": {"dataset": "synthetic"}}))
    with pytest.raises((RuntimeError, NotImplementedError)) as err:
        model.fit(
            tiny_processed.for_training(), FitContext(device="meta", progress=False, epochs=1)
        )
    message = str(err.value)
    assert "same device" not in message and "Expected all tensors" not in message, message
    assert "meta" in message or "fused=True" in message, message
    module = getattr(model, "module_", None)
    if module is not None:
        assert {p.device.type for p in module.parameters()} == {"meta"}


def test_the_ease_solve_and_the_table(tmp_path):
    rows = gpu_check.ease_solve("cpu", sizes=(120,))
    assert rows[0]["items"] == 120 and rows[0]["cpu_seconds"] >= 0
    record = {
        "gpu": "test",
        "device": "cuda",
        "families": {
            "mf": {
                "fp32": {
                    "test_rmse": 0.93,
                    "test_ndcg@10": 0.05,
                    "seconds_per_epoch": 0.4,
                    "eval_seconds": 1.0,
                    "peak_gpu_mib": 300.0,
                },
                "bf16": {
                    "test_rmse": 0.931,
                    "test_ndcg@10": 0.05,
                    "seconds_per_epoch": 0.3,
                    "eval_seconds": 0.9,
                    "peak_gpu_mib": 200.0,
                },
            },
            "bst": {"fp32": {"failed": "out of memory"}, "bf16": {"failed": "out of memory"}},
        },
        "not_run": ["sasrec"],
        "ease_solve": rows,
    }
    text = gpu_check.table(record)
    assert "| mf | 0.9300 | 0.9310 | 0.0500 | 0.0500 | 0.40 | 0.30 | 1.00 | 300 |" in text
    assert "| bst | failed: out of memory |" in text and "not run (time budget): sasrec" in text
