"""Pinned CPU code paths (``train.kernels``), so the last bits of every float agree
between machines.

The libraries under the models pick their kernels from the CPU they find: torch's
ATen its vector width (AVX2 or AVX-512), MKL and oneDNN their instruction set and
blocking, OpenBLAS (numpy, scipy, gensim, implicit) a kernel per CPU model. Two x86-64
machines therefore sum the same numbers in different orders, and a model trained for
many epochs drifts apart by more than a rounding error. ``portable`` (the default)
chooses the same path on every x86-64 CPU with AVX2 (every desktop and server CPU
since about 2015), by the libraries' own switches:

=====================  ========  ==============================================
variable               value     library
=====================  ========  ==============================================
ATEN_CPU_CAPABILITY    avx2      torch's element-wise and reduction kernels
MKL_CBWR               AVX2      MKL's conditional numerical reproducibility
ONEDNN_MAX_CPU_ISA     AVX2      oneDNN (torch's mkldnn ops)
OPENBLAS_CORETYPE      Haswell   OpenBLAS's kernels and blocking
=====================  ========  ==============================================

These are read when the libraries load, so :func:`pin` runs at the start of every
stage, before numpy or torch is imported. ``native`` leaves each library to choose
(faster on AVX-512 machines, reproducible only on the same CPU). On a CPU without
AVX2, or not x86-64, nothing is pinned; ``movierec check-repro`` then compares with
the tolerances measured across kernels. A variable the machine already sets for
OpenBLAS is kept: it is there because that CPU needs it.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

from movierec.config.yaml_reader import read_yaml
from movierec.errors import MovierecError

PORTABLE_ENV = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "OPENBLAS_CORETYPE": "Haswell",
}
KEEP_IF_SET = ("OPENBLAS_CORETYPE",)
KERNELS = ("portable", "native")


def has_avx2() -> bool:
    """An x86-64 CPU with AVX2 and FMA (what the pinned paths need)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        flags = next(
            line.split(":", 1)[1].split()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("flags")
        )
    except (OSError, StopIteration):
        return False
    return "avx2" in flags and "fma" in flags


def portable_env() -> dict[str, str]:
    """The variables ``portable`` sets on this machine (none where it cannot)."""
    if not has_avx2():
        return {}
    return {
        key: value
        for key, value in PORTABLE_ENV.items()
        if not (key in KEEP_IF_SET and os.environ.get(key))
    }


def pin(kernels: str) -> list[str]:
    """Set the pinned code paths for ``kernels`` in this process's environment; the
    variables set. Does nothing once numpy or torch is loaded (too late to take effect)."""
    if kernels != "portable" or "numpy" in sys.modules or "torch" in sys.modules:
        return []
    chosen = portable_env()
    os.environ.update(chosen)
    return sorted(chosen)


def pin_from_params(path: Path = Path("params.yaml")) -> list[str]:
    """:func:`pin` with ``train.kernels`` of ``params.yaml`` (default portable). A file
    that cannot be read is left for the stage to report in its own words."""
    try:
        raw = read_yaml(path) if path.is_file() else {}
    except MovierecError:
        return []
    kernels = ((raw.get("train") or {}) if isinstance(raw, dict) else {}).get("kernels")
    return pin(kernels if kernels in KERNELS else "portable")


def in_force() -> dict[str, str]:
    """The pinning variables as this process has them (for the machine record)."""
    return {key: os.environ.get(key, "") for key in PORTABLE_ENV}
