"""Multi-process training with PyTorch's own engine (DDP), launched by torchrun.

    torchrun --nproc_per_node N -m selfsup train ...          (one machine, N processes)

Each process joins the process group torchrun describes in its environment (gloo for CPU
tensors; NCCL for CUDA tensors when a GPU is present), trains on its own slice of every global
batch and exchanges gradients through DistributedDataParallel.

Why the gradients are exact: see selfsup/collectives.py (the differentiable gathers methods use).

Only rank 0 writes files (the run directory, metrics, checkpoints) and draws the progress bar;
decisions that must agree (stop, time budget, checkpoint now, non-finite loss) are synchronised
every step with one small all-reduce. Nothing is pickled: byte payloads travel as uint8 tensors.
"""
from __future__ import annotations

import atexit
import gc
import os
import socket
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Sequence, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from ..collectives import all_reduce_with_grad
from ..errors import SelfSupError

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (rank 0 of 1 when not distributed)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


class PeerError(SelfSupError):
    """Another training process failed; it (rank 0, when it is the one) reports the cause."""


def env_world() -> World:
    """The world torchrun describes in the environment (RANK, WORLD_SIZE, LOCAL_RANK)."""
    try:
        return World(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")),
                     int(os.environ.get("LOCAL_RANK", "0")))
    except ValueError:
        return World()


def is_main_process() -> bool:
    """False in the torchrun workers other than rank 0 (they stay silent and write nothing)."""
    return env_world().is_main


_OWNED = False  # whether selfsup created the process group (and so destroys it at exit)


def restart_count() -> int:
    """How many times torchrun's elastic agent has restarted this process group (0 on its first start, and outside
    torchrun): TORCHELASTIC_RESTART_COUNT."""
    try:
        return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    except ValueError:
        return 0


def restarted_by_agent(world: World) -> bool:
    """Whether torchrun's agent has restarted this group: on any of its nodes (a collective). A node that did not fail
    restarts its workers with TORCHELASTIC_RESTART_COUNT unchanged when another node's failure re-forms the group."""
    count = torch.tensor([restart_count()], dtype=torch.long)
    if world.distributed:
        dist.all_reduce(count, op=dist.ReduceOp.MAX)
    return int(count) > 0


#: How gloo and NCCL word a collective whose peer went away (killed, out of memory, its machine gone).
PEER_LOST = ("Connection reset by peer", "Connection closed by peer", "Broken pipe", "Connection refused",
             "communicator was aborted")


def lost_peer(exc: BaseException) -> bool:
    """Whether `exc` is a collective failing because another process of the torchrun group stopped: this process did
    nothing wrong, and the group's restart (torchrun --max-restarts) resumes from the last checkpoint."""
    return env_world().distributed and isinstance(exc, RuntimeError) and any(s in str(exc) for s in PEER_LOST)


GROUP_STORE_KEY = "selfsup/group-store"


def group_store(timeout: timedelta) -> tuple[Any, int, int]:
    """The store the process group meets in: (store, rank, world size).

    torchrun's elastic agent hosts one store for the whole job and keeps it across restarts of the group, and nothing
    in it tells one round of the group from the next on every node (TORCHELASTIC_RESTART_COUNT counts a node's own
    failures only). Its keys outlive the processes that wrote them: a process of a restarted group could read the
    address a killed one had published, and gloo would connect to a dead process. So under the agent, rank 0 hosts a
    fresh store for each group (at MASTER_ADDR, a free port) and publishes its address in the agent's store; the
    other processes connect to the address they read there, and one that refuses (a dead round's) is read again.
    """
    base, rank, size = next(dist.rendezvous("env://", timeout=timeout))
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return base, rank, size
    host = os.environ["MASTER_ADDR"]
    if rank == 0:
        own = dist.TCPStore(host, 0, size, is_master=True, timeout=timeout, wait_for_workers=False)
        base.set(GROUP_STORE_KEY, f"{host}:{own.port}")
        return own, rank, size
    deadline = time.monotonic() + timeout.total_seconds()
    while True:
        address = base.get(GROUP_STORE_KEY).decode()
        where, port = address.rsplit(":", 1)
        try:
            connect_once(where, int(port))  # a dead round's address: refused at once, read again
            store = dist.TCPStore(where, int(port), size, is_master=False, timeout=timedelta(seconds=3))
            store.set_timeout(timeout)  # 3 s to tell a dead round's address; then the group's own timeout
            return store, rank, size
        except (RuntimeError, OSError):  # the store of a group that is gone: rank 0 has not published its own yet
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def connect_once(host: str, port: int) -> None:
    """Open and close one TCP connection to host:port; OSError if nothing accepts it. A dead round's store address
    refuses at once, where TCPStore's client retries a refused connection for seconds."""
    with socket.create_connection((host, port), timeout=3.0):
        pass


def init() -> World:
    """Join the process group (env:// from torchrun) when launched with several processes.

    The group lives until the process exits, so a script may train several times under one torchrun.
    """
    global _OWNED
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), env_world().local_rank)
    world = env_world()
    if not world.distributed:
        return World()
    if not dist.is_available():
        raise SelfSupError("torchrun launched several processes but this PyTorch build has no torch.distributed")
    backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(world.local_rank % torch.cuda.device_count())
    timeout = timedelta(seconds=float(os.environ.get("SELFSUP_DIST_TIMEOUT_S", "1800")))
    store, rank, size = group_store(timeout)
    dist.init_process_group(backend, store=store, rank=rank, world_size=size, timeout=timeout)
    if not _OWNED:
        atexit.register(shutdown)
    _OWNED = True
    return World(dist.get_rank(), dist.get_world_size(), world.local_rank)


def shutdown() -> None:
    """Leave the process group if selfsup created it (at exit). DDP reducers that still hold the group (they sit in
    reference cycles, so only the garbage collector frees them) are freed first: a reducer destroyed after its group
    aborts the process ('terminate called without an active exception')."""
    global _OWNED
    if _OWNED and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()
    _OWNED = False


def process_device(device: torch.device, world: World) -> torch.device:
    """Under torchrun every process drives its own GPU: cuda means cuda:LOCAL_RANK."""
    if world.distributed and device.type == "cuda":
        return torch.device("cuda", world.local_rank % torch.cuda.device_count())
    return device


# ----------------------------------------------------------------------------------------------
# Synchronised BatchNorm that works on any device and backend (torch's SyncBatchNorm needs a GPU)

class SyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are over the global batch of all processes (CPU/gloo too).

    Two-pass statistics (global mean, then global sum of squared deviations) keep it as accurate as
    BatchNorm on the concatenated batch; running statistics follow BatchNorm's update rule.
    """

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-D input, got {x.dim()}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        if not (self.training and distributed):
            return super().forward(x)
        x = x.float()  # statistics in float32, as BatchNorm under autocast
        dims = [0] + list(range(2, x.dim()))
        shape = [1, -1] + [1] * (x.dim() - 2)
        local_n = x.numel() // x.shape[1]
        sums = all_reduce_with_grad(torch.cat([x.sum(dims), x.new_tensor([float(local_n)])]))
        count = sums[-1].detach()
        mean = sums[:-1] / count
        centred = x - mean.view(shape)
        var = all_reduce_with_grad(centred.pow(2).sum(dims)) / count
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                n = float(count)
                self.running_mean.mul_(1 - m).add_(mean.detach().to(self.running_mean.dtype), alpha=m)
                unbiased = var.detach() * (n / max(n - 1, 1.0))
                self.running_var.mul_(1 - m).add_(unbiased.to(self.running_var.dtype), alpha=m)
        return out


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Replace every BatchNorm in `module` (in place) by a synchronised one: torch's on GPUs, ours elsewhere.

    Parameters and buffers keep their names, so state dicts stay interchangeable with plain BatchNorm.
    """
    for name, child in list(module.named_children()):
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, (SyncBatchNorm,
                                                                                          nn.SyncBatchNorm)):
            cls = nn.SyncBatchNorm if device.type == "cuda" else SyncBatchNorm
            new = cls(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
            _copy_state(child, new)
            new._selfsup_original = type(child)
            setattr(module, name, new)
        else:
            convert_sync_batchnorm(child, device)
    return module


def _copy_state(old: nn.Module, new: nn.Module) -> None:
    """Same values, device, mode and trainability (EMA targets' frozen parameters stay frozen)."""
    state = old.state_dict()
    if state:
        new.to(next(iter(state.values())).device)
    new.load_state_dict(state)
    for (_, p_old), (_, p_new) in zip(old.named_parameters(), new.named_parameters()):
        p_new.requires_grad_(p_old.requires_grad)
    new.train(old.training)


def revert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Undo `convert_sync_batchnorm` (in place): plain BatchNorm modules with the same state."""
    for name, child in list(module.named_children()):
        original = getattr(child, "_selfsup_original", None)
        if original is not None:
            new = original(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
            _copy_state(child, new)
            setattr(module, name, new)
        else:
            revert_sync_batchnorm(child)
    return module


# ----------------------------------------------------------------------------------------------
# Sharding, agreement and small synchronisations

def shard(perm: torch.Tensor, step: int, batch: int, world: World) -> torch.Tensor:
    """This process's `batch` indices of global batch `step`: global batch s is perm[s*B:(s+1)*B], B = batch*R,
    and process r takes its r-th block, so the processes see disjoint samples and together the same global
    batches as one process with batch B."""
    start = (step * world.size + world.rank) * batch
    return perm[start:start + batch]


def agree(error: BaseException | None, world: World) -> None:
    """Collective: every process learns whether set-up failed anywhere; all raise if it did.

    The failing process re-raises its own error; the others raise PeerError carrying its message.
    """
    if not world.distributed:
        if error is not None:
            raise error
        return
    message = "" if error is None else (str(error) or type(error).__name__)
    messages = all_gather_bytes(message.encode("utf-8"), world)
    if error is not None:
        raise error
    for rank, raw in enumerate(messages):
        if raw:
            raise PeerError(f"process {rank} failed: {raw.decode('utf-8', 'replace')}")


def agreed(world: World, fn: Callable[[], T], *, main_only: bool = True) -> T | None:
    """Run `fn` on rank 0 (or, with main_only=False, on every process), then `agree`: if it failed anywhere, every
    process raises; otherwise its result (None on the processes that did not run it). The one all-ranks-agree
    mechanism of the trainer: file-system work, downloads and checks happen once, failures are seen by all."""
    result, error = None, None
    if world.is_main or not main_only:
        try:
            result = fn()
        except BaseException as exc:  # noqa: BLE001 -- every process must learn about it
            error = exc
    agree(error, world)
    return result


def gather_arrays(arrays: tuple[Any, ...], world: World) -> list[tuple[Any, ...]]:
    """Every process's tuple of numpy arrays, in rank order (as .npy bytes: nothing pickled); one process: [arrays]."""
    import io

    import numpy as np

    if not world.distributed:
        return [arrays]
    buf = io.BytesIO()
    for a in arrays:
        np.save(buf, a, allow_pickle=False)
    out = []
    for payload in all_gather_bytes(buf.getvalue(), world):
        stream = io.BytesIO(payload)
        out.append(tuple(np.load(stream, allow_pickle=False) for _ in arrays))
    return out


def all_gather_bytes(payload: bytes, world: World) -> list[bytes]:
    """Every process's byte string, in rank order (uint8 CPU tensors over gloo; nothing pickled)."""
    if not world.distributed:
        return [payload]
    size = torch.tensor([len(payload)], dtype=torch.long)
    sizes = [torch.zeros(1, dtype=torch.long) for _ in range(world.size)]
    dist.all_gather(sizes, size)
    longest = max(int(s) for s in sizes)
    buf = torch.zeros(max(longest, 1), dtype=torch.uint8)
    if payload:
        buf[:len(payload)] = torch.frombuffer(bytearray(payload), dtype=torch.uint8)
    parts = [torch.empty_like(buf) for _ in range(world.size)]
    dist.all_gather(parts, buf)
    return [bytes(p[:int(s)].numpy().tobytes()) for p, s in zip(parts, sizes)]


def broadcast_bytes(payload: bytes | None, world: World) -> bytes:
    """Rank 0's byte string on every process."""
    if not world.distributed:
        return payload or b""
    size = torch.tensor([len(payload or b"")], dtype=torch.long)
    dist.broadcast(size, 0)
    buf = torch.zeros(max(int(size), 1), dtype=torch.uint8)
    if world.is_main and payload:
        buf[:len(payload)] = torch.frombuffer(bytearray(payload), dtype=torch.uint8)
    dist.broadcast(buf, 0)
    return bytes(buf[:int(size)].numpy().tobytes())


def sync_values(world: World, from_main: Sequence[float], summed: Sequence[float]) -> tuple[list[float], list[float]]:
    """One all-reduce: rank 0's `from_main` values, and the sums over processes of `summed`."""
    if not world.distributed:
        return list(from_main), list(summed)
    t = torch.tensor([*(from_main if world.is_main else [0.0] * len(from_main)), *summed], dtype=torch.float64)
    dist.all_reduce(t)
    values = t.tolist()
    return values[:len(from_main)], values[len(from_main):]


def ddp(method: nn.Module, device: torch.device) -> nn.Module:
    """Wrap the method for gradient averaging. Buffers are not broadcast each step: BatchNorm statistics are
    synchronised by --sync-bn when wanted, and methods keep shared state equal themselves (MoCo enqueues the
    keys gathered from every process)."""
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    options = {"device_ids": [device.index] if device.type == "cuda" else None}
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters:
        options["forward_sync_buffers"] = False  # newer PyTorch: buffers are still made equal once, at set-up
    else:
        options["broadcast_buffers"] = False
    return DistributedDataParallel(method, **options)

