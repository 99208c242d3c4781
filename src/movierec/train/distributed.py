"""Data-parallel training under ``torchrun``: which process this is, and the few
collectives the Trainer needs.

``torchrun`` (PyTorch's launcher) starts one process per GPU (or per CPU share) and
sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE`` and the rendezvous address; outside it
every function here answers for a single process, so the same code runs both ways.
The backend is ``nccl`` when the processes train on CUDA and ``gloo`` on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from movierec.errors import ConfigError, MovierecError


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes the model and the metrics; the others only train."""
        return self.rank == 0


def under_torchrun() -> bool:
    """True in a process torchrun started (of any number)."""
    return "LOCAL_RANK" in os.environ


def launched() -> bool:
    """True inside a ``torchrun`` job of more than one process."""
    return under_torchrun() and int(os.environ.get("WORLD_SIZE", "1")) > 1


def current() -> World:
    """The world of an initialised process group, else a single process."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(
        rank=dist.get_rank(),
        size=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        local_size=int(os.environ.get("LOCAL_WORLD_SIZE", "1")),
    )


def device_for(name: str) -> str:
    """The device this rank trains on: ``cuda`` becomes ``cuda:<LOCAL_RANK>`` (one GPU per
    process); ``auto`` picks CUDA when present, else the CPU (gloo)."""
    if not launched():
        return name
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    wants_cuda = name.startswith("cuda") or (name == "auto" and torch.cuda.is_available())
    if not wants_cuda:
        return "cpu"
    if not torch.cuda.is_available():
        raise ConfigError(
            "params.yaml: `train.device` is cuda, but no CUDA device is available; use auto or cpu"
        )
    if local_rank >= torch.cuda.device_count():
        raise ConfigError(
            f"torchrun started {os.environ.get('LOCAL_WORLD_SIZE')} processes on this node but it "
            f"has {torch.cuda.device_count()} GPU(s); lower --nproc_per_node "
            "(train.nproc_per_node)"
        )
    return f"cuda:{local_rank}"


def setup(device: str) -> World:
    """Join the process group torchrun describes (once); a no-op for a single process."""
    if not launched():
        return World()
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(torch.device(device))
        dist.init_process_group(backend=backend)
    return current()


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def broadcast(value: Any, world: World) -> Any:
    """Rank 0's ``value`` on every rank (early-stopping decisions must agree)."""
    if world.size == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_sum(tensor: torch.Tensor, world: World) -> torch.Tensor:
    """Sum of ``tensor`` over the ranks (in place), e.g. the epoch's training loss."""
    if world.size > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def relaunch(args: list[str], nproc: int, threads: int) -> None:
    """Run ``python -m movierec <args>`` under torchrun, ``nproc`` processes on this node
    (what ``train.launcher: torchrun`` makes the DVC stage do); one line if a rank fails."""
    import logging

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    if threads:  # the node's threads are shared by its ranks
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, threads // nproc)))
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    try:
        run(parse_args(["--standalone", f"--nproc_per_node={nproc}", "-m", "movierec", *args]))
    except ChildFailedError as err:
        rank, failure = err.get_first_failure()
        raise MovierecError(
            f"torchrun: rank {rank} of {nproc} failed first (exit code {failure.exitcode}); "
            "its reason is printed above"
        ) from None
