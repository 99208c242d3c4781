"""The machine a run computed on, as a record: what check-repro names when metrics moved.

The report stage writes it beside the metrics (``metrics/machine.json``); another
machine's record against it says which difference (vector width, BLAS, cores) can
explain a move in the last digits.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from movierec.train.kernels import in_force


def describe_machine() -> dict[str, Any]:
    """What decides the last bits of a float result: CPU, vector width, libraries, threads."""
    record: dict[str, Any] = {"machine": platform.machine(), "system": platform.system()}
    try:
        info = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        info = []
    fields = {}
    for line in info:
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), " ".join(value.split()))
    record["cpu"] = fields.get("model name") or platform.processor() or "unknown"
    if "cpu family" in fields:
        record["cpu_model"] = (
            f"{fields.get('vendor_id')} family {fields['cpu family']} model {fields.get('model')}"
        )
    flags = set(fields.get("flags", "").split())
    record["cpu_vector"] = next(
        (isa for isa in ("avx512f", "avx2", "avx", "sse4_2") if isa in flags), "unknown"
    )
    try:
        import torch  # deferred: kernels must be pinned before torch loads

        record["torch"] = torch.__version__
        record["torch_cpu_kernels"] = torch.backends.cpu.get_cpu_capability()
    except ImportError:
        pass
    import numpy  # deferred, as torch
    import scipy

    record["numpy"] = numpy.__version__
    record["scipy"] = scipy.__version__
    try:
        from threadpoolctl import threadpool_info

        record["blas"] = sorted(
            {
                f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')})"
                for i in threadpool_info()
            }
        )
    except ImportError:
        pass
    record["cores"] = os.cpu_count()
    record["pinned_kernels"] = ", ".join(f"{k}={v}" for k, v in in_force().items() if v) or "none"
    return record
