"""Running one job on several processes under torchrun: the process group, DDP, sharding and rank-0 duties.

``torchrun --nproc-per-node N`` (or ``--nnodes M --node-rank R --rdzv-endpoint HOST:PORT`` across machines)
starts N processes per node and tells each who it is through environment variables (RANK, WORLD_SIZE,
LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT). Everything here reads those, and everything is a no-op
in a plain single process, so a training loop or a batch run written with these helpers behaves exactly as before
when it is not launched by torchrun.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from radassist.errors import RadAssistError
from radassist.io.atomic import make_temp_dir

if TYPE_CHECKING:
    import torch

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 30 * 60.0  # torch's own default for collectives
LONG_TIMEOUT_S = 48 * 3600.0  # batch runs: a rank that finished its shard waits this long for the slowest one


class DistributedError(RadAssistError):
    """The torchrun environment is inconsistent, or the process group could not be joined."""


@dataclass(frozen=True)
class DistributedEnv:
    """Who this process is in a torchrun job (a single process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    master_addr: str | None = None
    master_port: int | None = None

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def describe(self) -> str:
        if not self.distributed:
            return "single process"
        return (f"rank {self.rank} of {self.world_size} (local rank {self.local_rank} of {self.local_world_size}, "
                f"master {self.master_addr}:{self.master_port})")


def _int_variable(environ: Mapping[str, str], name: str, default: int) -> int:
    text = environ.get(name)
    if text is None or text.strip() == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise DistributedError(f"environment variable {name}={text!r} is not a whole number; is this process "
                               f"started by torchrun?") from None


def read_env(environ: Mapping[str, str] | None = None) -> DistributedEnv:
    """The torchrun variables of ``environ`` (default: this process's environment), checked for consistency."""
    environ = os.environ if environ is None else environ
    world = _int_variable(environ, "WORLD_SIZE", 1)
    rank = _int_variable(environ, "RANK", 0)
    local_rank = _int_variable(environ, "LOCAL_RANK", 0)
    local_world = _int_variable(environ, "LOCAL_WORLD_SIZE", world)
    if world < 1:
        raise DistributedError(f"WORLD_SIZE must be at least 1, got {world}")
    if not 0 <= rank < world:
        raise DistributedError(f"RANK must be within 0..{world - 1} (WORLD_SIZE {world}), got {rank}")
    if not 1 <= local_world <= world or not 0 <= local_rank < local_world:
        raise DistributedError(f"LOCAL_RANK {local_rank} / LOCAL_WORLD_SIZE {local_world} do not fit WORLD_SIZE "
                               f"{world}")
    address = environ.get("MASTER_ADDR") or None
    port = _int_variable(environ, "MASTER_PORT", 0) or None
    if world > 1 and (address is None or port is None):
        raise DistributedError("WORLD_SIZE > 1 but MASTER_ADDR or MASTER_PORT is not set; start the job with "
                               "torchrun, which sets them")
    return DistributedEnv(rank, world, local_rank, local_world, address, port)


# -- the process group ------------------------------------------------------------------------------------------------

def _dist() -> Any:
    import torch.distributed as dist

    return dist


def _joined() -> bool:
    """Whether this process is in an initialised process group (of any size)."""
    dist = _dist()
    return bool(dist.is_available() and dist.is_initialized())


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return _joined() and _dist().get_world_size() > 1


def get_rank() -> int:
    """This process's rank: from the process group once joined, else from torchrun's RANK (0 by default)."""
    return int(_dist().get_rank()) if _joined() else read_env().rank


def get_world_size() -> int:
    return int(_dist().get_world_size()) if _joined() else read_env().world_size


def is_main_process() -> bool:
    """Rank 0 (or a plain single process): the one that writes checkpoints, logs and summaries."""
    return get_rank() == 0


def backend_for(device: "torch.device | str | None") -> str:
    """NCCL between CUDA GPUs, Gloo otherwise (CPU, and the object collectives of batch runs)."""
    import torch

    return "nccl" if device is not None and torch.device(device).type == "cuda" else "gloo"


def rank_device_preference(preference: str, env: DistributedEnv | None = None) -> str:
    """Under torchrun each process takes its own GPU: 'auto' or 'cuda' become ``cuda:LOCAL_RANK`` when this node
    has CUDA GPUs; an explicit device, or a single process, is left as it is."""
    import torch

    env = env or read_env()
    if not env.distributed or preference.strip().lower() not in ("auto", "cuda") or not torch.cuda.is_available():
        return preference
    count = torch.cuda.device_count()
    if env.local_rank >= count:
        raise DistributedError(f"local rank {env.local_rank} has no GPU of its own: this node has {count}; start "
                               f"at most {count} processes per node (--nproc-per-node)")
    return f"cuda:{env.local_rank}"


def init_distributed(device: "torch.device | str | None" = None, backend: str | None = None,
                     timeout_s: float = DEFAULT_TIMEOUT_S, env: DistributedEnv | None = None) -> DistributedEnv:
    """Join the process group torchrun described (``init_method='env://'``); nothing happens in a single process
    or when the group is already joined. ``device`` picks the backend (and is made this process's CUDA device)."""
    import torch

    env = env or read_env()
    dist = _dist()
    if not env.distributed or _joined():
        return env
    if not dist.is_available():
        raise DistributedError("this PyTorch build has no torch.distributed; it cannot run under torchrun")
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.set_device(torch.device(device))
    try:
        dist.init_process_group(backend=backend or backend_for(device), init_method="env://",
                                rank=env.rank, world_size=env.world_size, timeout=timedelta(seconds=timeout_s))
    except (RuntimeError, ValueError) as error:
        raise DistributedError(f"could not join the process group at {env.master_addr}:{env.master_port} as "
                               f"{env.describe()}: {str(error).splitlines()[0]}") from None
    return env


def destroy_distributed() -> None:
    """Leave the process group (a no-op outside one), all ranks together.

    The barrier first: a rank that tears down its Gloo connections while a peer still uses them can make the
    peer's process abort at exit ("terminate called without an active exception")."""
    if _joined():
        _dist().barrier()
        _dist().destroy_process_group()


@contextlib.contextmanager
def distributed_session(device: "torch.device | str | None" = None, backend: str | None = None,
                        timeout_s: float = DEFAULT_TIMEOUT_S) -> Iterator[DistributedEnv]:
    """Join the group for the block and leave it afterwards (only if this block joined it)."""
    already = _joined()
    env = init_distributed(device, backend, timeout_s)
    try:
        yield env
    finally:
        if not already:
            destroy_distributed()


@contextlib.contextmanager
def distributed_command(args: Any, backend: str | None = None,
                        timeout_s: float = DEFAULT_TIMEOUT_S) -> Iterator[DistributedEnv]:
    """A CLI command under torchrun: its ``--device`` becomes this rank's GPU (see
    :func:`rank_device_preference`), the process joins the group for the command (NCCL when that is a GPU, else
    Gloo, unless ``backend`` says otherwise) and only rank 0 prints to standard output. In a single process the
    command runs exactly as without this block."""
    env = read_env()
    if not env.distributed:
        yield env
        return
    device = None
    if isinstance(getattr(args, "device", None), str):
        args.device = rank_device_preference(args.device, env)
        device = args.device if args.device.strip().lower().startswith("cuda") else None
    with distributed_session(device, backend, timeout_s) as joined, quiet_unless_main():
        yield joined


# -- collectives (no-ops in a single process) -------------------------------------------------------------------------

def _collective_device() -> "torch.device":
    import torch

    if _dist().get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def barrier() -> None:
    """Wait until every rank gets here."""
    if is_distributed():
        _dist().barrier()


def all_reduce_sum(values: float | Sequence[float]) -> Any:
    """The element-wise sum over ranks (float64): a float for a float, a list for a sequence."""
    import torch

    scalar = isinstance(values, (int, float))
    if not is_distributed():
        return float(values) if scalar else [float(v) for v in values]
    tensor = torch.tensor([values] if scalar else list(values), dtype=torch.float64, device=_collective_device())
    _dist().all_reduce(tensor, op=_dist().ReduceOp.SUM)
    summed = tensor.cpu().tolist()
    return summed[0] if scalar else summed


def global_mean(total: float, count: float) -> float:
    """sum(total) / sum(count) over ranks: the mean of a metric whose shards have different sizes."""
    total, count = all_reduce_sum([total, count])
    return total / count if count else math.nan


def broadcast_object(value: T, source: int = 0) -> T:
    """``value`` of rank ``source`` on every rank (any picklable object)."""
    if not is_distributed():
        return value
    holder = [value]
    _dist().broadcast_object_list(holder, src=source, device=_collective_device())
    return holder[0]


def gather_objects(value: T) -> list[T]:
    """Every rank's ``value``, in rank order, on every rank."""
    if not is_distributed():
        return [value]
    gathered: list[Any] = [None] * _dist().get_world_size()
    _dist().all_gather_object(gathered, value)
    return gathered


# -- sharding --------------------------------------------------------------------------------------------------------

def shard(items: Sequence[T], rank: int | None = None, world_size: int | None = None) -> list[T]:
    """This rank's share of ``items`` (every world_size-th, starting at rank): each item on exactly one rank.
    For inference and evaluation, where an item must not be seen twice."""
    rank = get_rank() if rank is None else rank
    world_size = get_world_size() if world_size is None else world_size
    return list(items[rank::world_size])


def rank_order(order: Sequence[T], rank: int | None = None, world_size: int | None = None) -> list[T]:
    """This rank's share of an epoch's item order, as ``DistributedSampler`` (drop_last=False) makes it: the
    order is padded by repeating its start until it divides evenly, then strided. Every rank gets the same number
    of items, so every rank takes the same number of optimiser steps (DDP needs that), and with a per-rank batch
    of B the ranks' batches k together are items k*N*B .. (k+1)*N*B of ``order``: the single-process batch of
    size N*B."""
    rank = get_rank() if rank is None else rank
    world_size = get_world_size() if world_size is None else world_size
    items = list(order)
    if world_size == 1 or not items:
        return items
    padding = -len(items) % world_size  # items to add until the order divides evenly
    padded = items + (items * math.ceil(padding / len(items)))[:padding]
    return padded[rank::world_size]


def distributed_sampler(dataset: Any, shuffle: bool = True, seed: int = 0, drop_last: bool = False) -> Any:
    """A ``DistributedSampler`` for ``DataLoader`` loops under torchrun (call ``set_epoch(epoch)`` each epoch), or
    None in a single process (let the DataLoader shuffle as before)."""
    if not is_distributed():
        return None
    from torch.utils.data.distributed import DistributedSampler

    return DistributedSampler(dataset, num_replicas=get_world_size(), rank=get_rank(), shuffle=shuffle, seed=seed,
                              drop_last=drop_last)


# -- data parallel training ------------------------------------------------------------------------------------------

def wrap_ddp(model: "torch.nn.Module", device: "torch.device | str", find_unused_parameters: bool = False,
             sync_batch_norm: bool = False) -> "torch.nn.Module":
    """``model`` in DistributedDataParallel under torchrun (it must already be on ``device``); the model itself
    in a single process. DDP broadcasts rank 0's weights at construction, so every rank starts identical.
    ``sync_batch_norm`` (CUDA only) computes BatchNorm statistics over the global batch."""
    if not is_distributed():
        return model
    import torch
    from torch.nn.parallel import DistributedDataParallel

    device = torch.device(device)
    if sync_batch_norm and device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    device_ids = [device] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=find_unused_parameters)


def unwrap(model: "torch.nn.Module") -> "torch.nn.Module":
    """The network inside a DDP wrapper (what is saved, validated and exported), or ``model`` itself."""
    from torch.nn.parallel import DistributedDataParallel

    return model.module if isinstance(model, DistributedDataParallel) else model


def accumulation_step(model: "torch.nn.Module", final: bool) -> contextlib.AbstractContextManager:
    """The context of one micro-step's forward and backward pass (both must be inside it): ``model.no_sync()``
    on DDP when this is not the last micro-step before an optimiser step, so gradients add up locally and are
    all-reduced once, in the final micro-step's backward; a no-op otherwise and in a single process."""
    from torch.nn.parallel import DistributedDataParallel

    if not final and isinstance(model, DistributedDataParallel):
        return model.no_sync()
    return contextlib.nullcontext()


def accumulation_plan(batches: int, steps: int) -> list[tuple[int, bool]]:
    """For each of an epoch's ``batches`` micro-batches: the size of its accumulation group (divide its loss by
    that) and whether it is the group's last (the optimiser steps after it; see :func:`accumulation_step`).
    Groups hold ``steps`` micro-batches; the epoch's last group may be shorter."""
    if steps < 1:
        raise ValueError(f"accumulation steps must be at least 1, got {steps}")
    plan = []
    for number in range(batches):
        start = number - number % steps
        size = min(steps, batches - start)
        plan.append((size, number - start + 1 == size))
    return plan


# -- rank-0 duties ---------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def main_process_first() -> Iterator[None]:
    """Rank 0 runs the block first (say, fills a cache); the other ranks run it after, reusing what it made."""
    if not is_main_process():
        barrier()
    try:
        yield
    finally:
        if is_main_process():
            barrier()


@contextlib.contextmanager
def main_rank_folder(folder: str | Path) -> Iterator[Path]:
    """``folder`` on rank 0; on the other ranks a private temporary folder removed afterwards. A command that
    writes its outputs (or its result.json) into the yielded folder thus publishes one copy, rank 0's."""
    if is_main_process():
        yield Path(folder)
        return
    scratch = make_temp_dir(prefix=f"radassist-rank{get_rank()}-")
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@contextlib.contextmanager
def quiet_unless_main() -> Iterator[None]:
    """Discard standard output on ranks other than 0, so a job prints its messages once (errors on stderr stay)."""
    with contextlib.nullcontext() if is_main_process() else contextlib.redirect_stdout(io.StringIO()):
        yield


__all__ = ["DEFAULT_TIMEOUT_S", "DistributedEnv", "DistributedError", "LONG_TIMEOUT_S", "accumulation_plan",
           "accumulation_step", "all_reduce_sum", "backend_for", "barrier", "broadcast_object", "destroy_distributed",
           "distributed_command", "distributed_sampler", "distributed_session", "gather_objects", "get_rank",
           "get_world_size", "global_mean", "init_distributed", "is_distributed", "is_main_process",
           "main_process_first", "main_rank_folder", "quiet_unless_main", "rank_device_preference", "rank_order",
           "read_env", "shard", "unwrap", "wrap_ddp"]
