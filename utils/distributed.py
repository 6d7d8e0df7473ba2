"""Run the same training script alone or under ``torchrun`` (DistributedDataParallel), unchanged.

Without ``torchrun``'s variables every helper is a no-op, so trainers never branch on being distributed.

>>> context = DistributedContext()  # what a plain single-process run gets
>>> context.is_main, context.world_size, context.is_distributed
(True, 1, False)
>>> all_reduce_mean(2.5, context)
2.5
"""

from __future__ import annotations

import gc
import importlib
import os
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands: its rank in the group and the device it trains on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, logs and progress bars."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def init_distributed(use_cuda: bool = True) -> DistributedContext:
    """Join the ``torchrun`` process group if there is one and pick this process's device
    (``cuda:LOCAL_RANK`` on GPUs when ``use_cuda``)."""
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    cuda = use_cuda and torch.cuda.is_available()
    if cuda:
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        # DistributedDataParallel imports torch._dynamo on first use. Imported while a process group
        # exists, torch._dynamo keeps references to it, so destroy_process_group() can no longer free
        # it: gloo's worker and transport threads then live on until the interpreter tears down and
        # an unlucky teardown order aborts the process ("terminate called without an active
        # exception", issue 17). Imported first, it holds nothing and the group ends with its threads.
        importlib.import_module("torch._dynamo")

        dist.init_process_group(backend="nccl" if cuda else "gloo")
    if world_size > 1 and not cuda:
        # Two gloo ranks on one machine would otherwise each spawn a thread per core and fight.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // _env_int("LOCAL_WORLD_SIZE", world_size)))
    return DistributedContext(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def shutdown_distributed(context: DistributedContext) -> None:
    """Leave and free the process group (no-op without one), after every DDP model is gone."""
    if context.is_distributed and dist.is_initialized():
        dist.destroy_process_group()
        # Free the group now, while the interpreter is whole, not during its teardown (see init_distributed).
        gc.collect()


def wrap_model(model: nn.Module, context: DistributedContext) -> nn.Module:
    """``DistributedDataParallel`` around ``model`` when distributed, else ``model`` itself."""
    if not context.is_distributed:
        return model
    if context.device.type == "cuda":
        return nn.parallel.DistributedDataParallel(model, device_ids=[context.device.index])
    return nn.parallel.DistributedDataParallel(model)


def unwrap_model(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def all_reduce_mean(value: float | torch.Tensor, context: DistributedContext) -> float:
    if not context.is_distributed:
        return float(value)
    tensor = torch.as_tensor(float(value), dtype=torch.float64, device=context.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return float(tensor.item()) / context.world_size


def any_rank(flag: bool, context: DistributedContext) -> bool:
    if not context.is_distributed:
        return flag
    tensor = torch.tensor(1.0 if flag else 0.0, device=context.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item() > 0)


def broadcast_object(value: Any, context: DistributedContext) -> Any:
    if not context.is_distributed:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def gather_objects(value: Any, context: DistributedContext) -> list[Any]:
    """Every rank's ``value`` in rank order, on every rank.

    >>> gather_objects({"done": 3}, DistributedContext())
    [{'done': 3}]
    """
    if not context.is_distributed:
        return [value]
    gathered: list[Any] = [None] * context.world_size
    dist.all_gather_object(gathered, value)
    return gathered


def broadcast_buffers(model: nn.Module, context: DistributedContext) -> None:
    """Copy rank 0's buffers (BatchNorm statistics) into every rank's bare ``model`` after training, so
    every rank returns the model rank 0 saved."""
    if not context.is_distributed:
        return
    for buffer in unwrap_model(model).buffers():
        dist.broadcast(buffer.data, src=0)


def barrier(context: DistributedContext) -> None:
    if context.is_distributed:
        dist.barrier()
