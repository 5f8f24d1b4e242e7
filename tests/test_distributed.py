"""Multi-process training (gloo on CPU): gathered losses and their gradients equal the single-process values on
the concatenated batch, and a 2-process torchrun training run writes exactly one run directory."""
import contextlib
import gc
import itertools
import json
import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from conftest import run_cli
from selfsup.methods.simclr import nt_xent_loss
from selfsup.training.distributed import World, convert_sync_batchnorm, ddp, revert_sync_batchnorm, shard
from selfsup.training.step import autocast_context, optimisation_step
from selfsup.views import Views
from selfsup.methods.base import StepInfo

WORLD = 2
LOCAL_BATCH = 6
TOL = 1e-6
BF16_GRAD_TOL = 2e-2
# MoCo's first step scores each local query against the shared queue: a per-sample loss that needs no gather
METHODS = ("simclr", "vicreg", "barlow_twins", "moco", "cola")
GATHERING = ("simclr", "vicreg", "barlow_twins", "cola")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TinyEncoder(nn.Sequential):
    """Linear-BN-ReLU: BatchNorm makes the test cover --sync-bn as well as the gathered losses."""

    def __init__(self, d_in: int = 10, d_out: int = 12) -> None:
        super().__init__(nn.Linear(d_in, d_out), nn.BatchNorm1d(d_out), nn.ReLU())
        self.out_dim = d_out


def build(name: str):
    from selfsup.methods import methods

    torch.manual_seed(0)
    opts = {"simclr": {"proj_hidden_dim": 16, "proj_dim": 8, "temperature": 0.5},
            "vicreg": {"proj_hidden_dim": 16, "proj_dim": 8},
            "barlow_twins": {"proj_hidden_dim": 16, "proj_dim": 8},
            "moco": {"proj_hidden_dim": 16, "proj_dim": 8, "queue_size": 32},
            "cola": {"proj_dim": 8}}[name]
    return methods.get(name)(TinyEncoder(), **opts)


@contextlib.contextmanager
def gloo_group(rank: int, port: int):
    """This worker process in a gloo group of WORLD processes (one thread each); at the end of the block a barrier, so
    no process tears the group down while another still talks through it, then the checks' DDP reducers (garbage in
    reference cycles), then the group."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        yield
        dist.barrier()
    finally:
        gc.collect()  # DDP reducers sit in reference cycles; one freed after its group aborts the process
        dist.destroy_process_group()


def grads(model: nn.Module) -> dict:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def ddp_pass(method, local: list, precision: str) -> tuple[torch.Tensor, dict]:
    """One forward and backward of `method` under --sync-bn and DDP on this process's views: the loss averaged over
    the processes and the (DDP-averaged) gradients."""
    convert_sync_batchnorm(method, torch.device("cpu"))
    wrapped = ddp(method, torch.device("cpu"))  # keep a reference: its hooks average the gradients
    with autocast_context(torch.device("cpu"), precision):
        loss, _ = wrapped(Views(local))
    loss.backward()
    mean = loss.detach().clone()
    dist.all_reduce(mean)
    return mean / WORLD, grads(method)


def _worker(rank: int, out_dir: str) -> None:
    report = {}
    for name, precision in itertools.product(METHODS, ("fp32", "bf16")):
        gen = torch.Generator().manual_seed(1)
        views = [torch.randn(LOCAL_BATCH * WORLD, 10, generator=gen) for _ in range(2)]
        cast = autocast_context(torch.device("cpu"), precision)  # forced bf16: emulated where not native
        # single-process reference on the concatenated (global) batch, computed in this process
        single = build(name)
        with cast:
            loss_single, _ = single(Views(views))
        loss_single.backward()
        g_single = grads(single)
        local = [v[rank * LOCAL_BATCH:(rank + 1) * LOCAL_BATCH] for v in views]
        # distributed: gathered loss + synchronised BatchNorm + DDP gradient averaging
        method = build(name)
        method.set_world(rank, WORLD)
        mean_loss, g_dist = ddp_pass(method, local, precision)
        # the same without gathering (each process's batch alone): must NOT match
        mean_naive, g_naive = ddp_pass(build(name), local, precision)
        revert_sync_batchnorm(method)
        report[f"{name}/{precision}"] = {
            "loss_single": loss_single.item(), "loss_dist": mean_loss.item(),
            "grad_keys_equal": sorted(g_single) == sorted(g_dist),
            "max_grad_diff": max((g_single[k] - g_dist[k]).abs().max().item() for k in g_single),
            "max_grad": max(g.abs().max().item() for g in g_single.values()),
            "naive_loss_diff": abs(mean_naive.item() - loss_single.item()),
            "naive_grad_diff": max((g_single[k] - g_naive[k]).abs().max().item() for k in g_single),
            "plain_bn_after_revert": all(type(m) is nn.BatchNorm1d for m in method.modules()
                                         if isinstance(m, nn.modules.batchnorm._BatchNorm)),
        }
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(report, f)


def _moco_worker(rank: int, out_dir: str) -> None:
    """Two SGD steps of MoCo: the second step's negatives come from the queue filled by the first."""
    gen = torch.Generator().manual_seed(2)
    batches = [[torch.randn(LOCAL_BATCH * WORLD, 10, generator=gen) for _ in range(2)] for _ in range(2)]

    def two_steps(method, model, local: bool):
        opt = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=0.5)
        losses = []
        for step, views in enumerate(batches):
            if local:
                views = [v[rank * LOCAL_BATCH:(rank + 1) * LOCAL_BATCH] for v in views]
            loss, _ = optimisation_step(method, model, opt, Views(views), StepInfo(step, step / 2),
                                        torch.device("cpu"), "fp32")
            mean = loss.clone()
            if local:
                dist.all_reduce(mean)
                mean /= WORLD
            losses.append(mean.item())
        return losses, method.queue.clone()

    single = build("moco")
    single_losses, single_queue = two_steps(single, single, local=False)
    method = build("moco")
    method.set_world(rank, WORLD)
    convert_sync_batchnorm(method, torch.device("cpu"))  # the key encoder's BatchNorm too
    wrapped = ddp(method, torch.device("cpu"))
    dist_losses, dist_queue = two_steps(method, wrapped, local=True)
    naive = build("moco")  # not told about the other process: enqueues its own keys only
    convert_sync_batchnorm(naive, torch.device("cpu"))
    wrapped_naive = ddp(naive, torch.device("cpu"))
    naive_losses, naive_queue = two_steps(naive, wrapped_naive, local=True)
    report = {"single": single_losses, "dist": dist_losses, "naive": naive_losses,
              "queue_diff": (dist_queue - single_queue).abs().max().item(),
              "naive_queue_diff": (naive_queue - single_queue).abs().max().item()}
    with open(os.path.join(out_dir, f"moco{rank}.json"), "w") as f:
        json.dump(report, f)


def _dino_worker(rank: int, out_dir: str) -> None:
    """One DINO step: the centre is the EMA of the teacher's mean over the global batch (all-reduced)."""
    from selfsup.methods.dino import DINO

    gen = torch.Generator().manual_seed(3)
    crops = [torch.randn(LOCAL_BATCH * WORLD, 10, generator=gen) for _ in range(4)]

    def one_step(world: bool, local: bool):
        torch.manual_seed(0)
        method = DINO(TinyEncoder(), out_dim=16, hidden_dim=16, bottleneck_dim=8, local_crops=2)
        if world:
            method.set_world(rank, WORLD)
        views = [v[rank * LOCAL_BATCH:(rank + 1) * LOCAL_BATCH] for v in crops] if local else crops
        if local:  # batch statistics over the global batch, as the single process computes them
            convert_sync_batchnorm(method, torch.device("cpu"))
        model = ddp(method, torch.device("cpu")) if local else method
        opt = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=0.1)
        optimisation_step(method, model, opt, Views(views[:2], views[2:]), StepInfo(0, 0.5), torch.device("cpu"),
                          "fp32")
        del model
        return method.center.clone()

    single = one_step(world=False, local=False)
    distributed = one_step(world=True, local=True)
    naive = one_step(world=False, local=True)  # its own batch's mean only: the negative control
    report = {"diff": (distributed - single).abs().max().item(), "naive_diff": (naive - single).abs().max().item(),
              "scale": single.abs().max().item()}
    with open(os.path.join(out_dir, f"dino{rank}.json"), "w") as f:
        json.dump(report, f)


def _memory_bank_worker(rank: int, out_dir: str) -> None:
    """One DeepCluster-v2 step: every process's memory bank receives every process's projections at their indices."""
    from selfsup.methods.base import TrainingContext
    from selfsup.methods.deepcluster_v2 import DeepClusterV2

    n = LOCAL_BATCH * WORLD
    gen = torch.Generator().manual_seed(5)
    crops = [torch.randn(n, 10, generator=gen) for _ in range(2)]
    indices = torch.randperm(n, generator=gen)

    def one_step(world: bool, local: bool):
        torch.manual_seed(0)
        method = DeepClusterV2(TinyEncoder(), num_prototypes=3, heads=2, proj_hidden_dim=16, proj_dim=8,
                               local_crops=0)
        method.setup(TrainingContext(n, LOCAL_BATCH if local else n, WORLD if world else 1))
        method.memory.copy_(torch.nn.functional.normalize(torch.randn(method.memory.shape, generator=
                                                                      torch.Generator().manual_seed(6)), dim=2))
        method.label_bank(0)
        if world:
            method.set_world(rank, WORLD)
        part = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH) if local else slice(None)
        if local:
            convert_sync_batchnorm(method, torch.device("cpu"))
        model = ddp(method, torch.device("cpu")) if local else method
        opt = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=0.1)
        views = Views([v[part] for v in crops], indices=indices[part])
        optimisation_step(method, model, opt, views, StepInfo(0, 0.5), torch.device("cpu"), "fp32")
        del model
        return method.memory.clone()

    single = one_step(world=False, local=False)
    distributed = one_step(world=True, local=True)
    naive = one_step(world=False, local=True)  # only its own projections: the negative control
    report = {"diff": (distributed - single).abs().max().item(), "naive_diff": (naive - single).abs().max().item()}
    with open(os.path.join(out_dir, f"bank{rank}.json"), "w") as f:
        json.dump(report, f)


def _all_checks(rank: int, port: int, out_dir: str) -> None:
    """Every check of this file that needs a gloo group, in one group of WORLD spawned processes (a spawn costs each
    process a fresh interpreter and torch import); each check writes its report for its test to read."""
    with gloo_group(rank, port):
        for check in (_worker, _moco_worker, _dino_worker, _memory_bank_worker, _sinkhorn_worker):
            check(rank, out_dir)


@pytest.fixture(scope="module")
def spawned(tmp_path_factory):
    out = tmp_path_factory.mktemp("spawned")
    mp.spawn(_all_checks, args=(free_port(), str(out)), nprocs=WORLD, join=True)
    return out


def test_deepcluster_memory_bank_holds_every_process_projections(spawned):
    """After a step every process's bank equals the single-process bank on the concatenated batch (so every process
    clusters the same bank into the same labels); a method not told about the other process (the negative control)
    misses the other half."""
    for rank in range(WORLD):
        r = json.loads((spawned / f"bank{rank}.json").read_text())
        assert r["diff"] <= 1e-5 and r["naive_diff"] > 1e-2, r


def _sinkhorn_worker(rank: int, out_dir: str) -> None:
    """SwAV's codes: Sinkhorn over the global batch gives each process its rows of the single-process codes."""
    from selfsup.methods.swav import sinkhorn

    gen = torch.Generator().manual_seed(4)
    scores = torch.nn.functional.normalize(torch.randn(LOCAL_BATCH * WORLD, 7, generator=gen), dim=1) @ \
        torch.nn.functional.normalize(torch.randn(5, 7, generator=gen), dim=1).T
    single = sinkhorn(scores, 0.05, 3)[rank * LOCAL_BATCH:(rank + 1) * LOCAL_BATCH]
    local = scores[rank * LOCAL_BATCH:(rank + 1) * LOCAL_BATCH]
    report = {"diff": (sinkhorn(local, 0.05, 3, distributed=True) - single).abs().max().item(),
              "naive_diff": (sinkhorn(local, 0.05, 3) - single).abs().max().item()}
    with open(os.path.join(out_dir, f"sinkhorn{rank}.json"), "w") as f:
        json.dump(report, f)


def test_swav_sinkhorn_over_the_global_batch(spawned):
    """All-reduced Sinkhorn equals one process's on the concatenated batch; the local-only one (negative control)
    does not."""
    for rank in range(WORLD):
        r = json.loads((spawned / f"sinkhorn{rank}.json").read_text())
        assert r["diff"] <= 1e-5 and r["naive_diff"] > 1e-3, r


def test_dino_centre_is_the_global_batch_mean(spawned):
    """Every process's centre after a step equals the single-process centre on the concatenated batch; a DINO not
    told about the other process (the negative control) centres on its own half and differs."""
    for rank in range(WORLD):
        r = json.loads((spawned / f"dino{rank}.json").read_text())
        assert r["scale"] > 1e-4 and r["diff"] <= 1e-6, r
        assert r["naive_diff"] > 1e-4, r


def test_moco_queue_holds_every_process_keys(spawned):
    """After a step every process's queue equals the single-process queue on the concatenated batch, so the next
    step's loss matches too; a MoCo that enqueues only its own keys (the negative control) does not."""
    for rank in range(WORLD):
        r = json.loads((spawned / f"moco{rank}.json").read_text())
        assert r["queue_diff"] <= 1e-5, r
        for single, dist_loss in zip(r["single"], r["dist"]):
            assert abs(dist_loss - single) <= 1e-5 * max(1.0, abs(single)), r
        assert r["naive_queue_diff"] > 1e-2, r
        assert abs(r["naive"][1] - r["single"][1]) > 1e-4, r


def test_gathered_losses_and_gradients_match_single_process(spawned):
    for rank in range(WORLD):
        report = json.loads((spawned / f"rank{rank}.json").read_text())
        assert set(report) == {f"{m}/{p}" for m in METHODS for p in ("fp32", "bf16")}
        for key, r in report.items():
            name, precision = key.split("/")
            # losses within 1e-6 of the value's scale in both precisions (the loss arithmetic is float32 under
            # autocast too; measured: <= 2e-7). Gradients: 1e-6 in fp32 (VICReg's reach ~5); under bf16 the backward
            # matmuls round to 8 bits and sum over another batch split than one process (measured: <= 6e-3).
            assert abs(r["loss_dist"] - r["loss_single"]) <= TOL * max(1.0, abs(r["loss_single"])), (key, r)
            assert r["grad_keys_equal"], (key, r)
            grad_tol = TOL if precision == "fp32" else BF16_GRAD_TOL
            assert r["max_grad_diff"] <= grad_tol * max(1.0, r["max_grad"]), (key, r)
            assert r["max_grad"] > 1e-3, (key, r)  # gradients are not trivially zero
            if name in GATHERING:  # without the gather the loss or the gradients differ clearly: the test has teeth
                assert max(r["naive_loss_diff"], r["naive_grad_diff"]) > 1e-3, (key, r)
            assert r["plain_bn_after_revert"], (key, r)


def test_nt_xent_shards_average_to_the_full_loss():
    z1, z2 = torch.randn(12, 5), torch.randn(12, 5)
    full = nt_xent_loss(z1, z2)
    assert nt_xent_loss(z1, z2, 0.5, z1, z2, 0).item() == pytest.approx(full.item(), abs=1e-6)
    parts = [nt_xent_loss(z1[r * 4:(r + 1) * 4], z2[r * 4:(r + 1) * 4], 0.5, z1, z2, 4 * r) for r in range(3)]
    assert (sum(parts) / 3).item() == pytest.approx(full.item(), abs=1e-6)


def test_shards_are_disjoint_and_cover_the_global_batches():
    perm = torch.randperm(40, generator=torch.Generator().manual_seed(0))
    for step in range(3):  # global batch 12 = 3 processes x 4
        parts = [shard(perm, step, 4, World(r, 3)) for r in range(3)]
        assert torch.equal(torch.cat(parts), perm[step * 12:(step + 1) * 12])
    assert torch.equal(shard(perm, 2, 5, World()), perm[10:15])  # one process: unchanged


def test_two_process_torchrun_training_writes_one_run(tmp_path, digits_npy):
    out = tmp_path / "runs" / "ddp"
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(WORLD), "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), "-m", "selfsup", "train", "--data", f"npy:{digits_npy}", "--method",
           "simclr", "--epochs", "1", "--batch-size", "32", "--device", "cpu", "--threads", "1", "--no-monitor",
           "--sync-bn", "--encoder-option", "widths=[16,32,32,32]", "--method-option", "proj_hidden_dim=64",
           "--checkpoint-every", "8", "--no-eval", "--json", "--out", out,
           "--precision", "bf16"]  # bf16 autocast under torchrun, emulated where the CPU has no native bf16
    proc = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])["summary"]  # one JSON line: rank 0 alone prints
    assert len([l for l in proc.stdout.splitlines() if l.startswith("{")]) == 1
    assert summary["world_size"] == 2 and summary["batch_size"] == 32 and summary["global_batch_size"] == 64
    assert summary["steps"] == 1347 // 64
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["ddp"]  # one run directory, no .partial
    assert {"summary.json", "encoder.safetensors", "config.yaml", "metrics.jsonl"} <= {p.name for p in out.iterdir()}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]  # the other process created no files
    steps = [json.loads(l) for l in open(out / "metrics.jsonl") if '"step"' in l]
    assert [s["step"] for s in steps] == [1, 10, 20]  # one writer: no duplicated records
    # rank 0's checkpoint holds every process's RNG states, and rank 1's own buffers (BatchNorm statistics)
    from selfsup.training import checkpoint as ckpt_io
    ckpt = ckpt_io.load(ckpt_io.checkpoint_file(out))
    assert ckpt.state["world_size"] == 2 and len(ckpt.state["rng"]) == 2
    assert {"rng/0/gen_augment", "rng/1/gen_augment", "rng/1/torch_cpu"} <= set(ckpt.tensors)
    assert any(k.startswith("rng/1/buffer/") for k in ckpt.tensors)
    assert not torch.equal(ckpt.tensors["rng/0/gen_augment"], ckpt.tensors["rng/1/gen_augment"])
    import selfsup
    run = selfsup.load(out)
    assert run.config.sync_bn and run.resolved.global_batch_size == 64
    # the learning rate scales with the global batch (SimCLR: linear, 0.3 x 64 / 256)
    assert run.resolved.lr == pytest.approx(0.3 * 64 / 256)


@pytest.fixture(scope="module")
def digits_npy(tmp_path_factory):
    """The digits training images (1,347) as an .npy file: torchrun's processes read it without importing
    scikit-learn, which the digits source's loader does (a second of each process's start)."""
    import numpy as np

    import selfsup

    path = tmp_path_factory.mktemp("data") / "digits.npy"
    np.save(path, selfsup.load_dataset("digits").train.x.numpy())
    return path


def torchrun(tmp_path, out, data, *extra, restarts=0, nproc=WORLD, port=None):
    """A torchrun training run of `data` (digits: tiny ConvNet, SimCLR, fp32, 2 processes in all) writing `out`,
    started, not waited. The c10d rendezvous, as torchrun's documentation recommends for restarts and several
    nodes."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--max-restarts",
           str(restarts), "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port or free_port()}", *extra,
           "-m", "selfsup", "train", "--data", f"npy:{data}", "--method", "simclr", "--epochs", "4", "--batch-size",
           "32", "--device", "cpu", "--threads", "1", "--no-monitor", "--encoder-option", "widths=[16,32,32,32]",
           "--method-option", "proj_hidden_dim=64", "--checkpoint-every", "5", "--no-eval", "--json", "--quiet",
           "--precision", "fp32", "--out", out]
    return subprocess.Popen(list(map(str, cmd)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=tmp_path, start_new_session=True)


def children(pid):
    """The pids whose parent is `pid` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def torchrun_rank(pid):
    """The RANK torchrun gave the worker `pid` (from its environment in /proc)."""
    entries = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
    return int(next(e for e in entries if e.startswith(b"RANK=")).split(b"=", 1)[1])


def failure(err: str, tail: int = 3000) -> str:
    """What a failed torchrun printed, for an assertion message: the head of each worker's crash report (Python's
    faulthandler after "Fatal Python error", a C++ "terminate called", glibc's "malloc(): ...") with the lines under
    it, then the tail; faulthandler's one-line list of extension modules left out, as it would fill the tail."""
    lines = [line for line in err.splitlines() if not line.startswith("Extension modules:")]
    heads = [i for i, line in enumerate(lines) if line.startswith(("Fatal Python error", "terminate called", "malloc"))]
    crashes = ["\n".join(lines[i:i + 25]) for i in heads[:2]]
    return "\n...\n".join(crashes + ["\n".join(lines)[-tail:]])


def wait_for_file(path, procs, timeout=240):
    import time

    deadline = time.time() + timeout
    while not path.exists():
        for proc in procs:
            assert proc.poll() is None, failure(proc.communicate()[1])
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def assert_same_encoder(a, b):
    from safetensors.torch import load_file

    for name in ("encoder.safetensors", "method.safetensors"):
        ta, tb = load_file(str(a / name)), load_file(str(b / name))
        assert [k for k in ta if not torch.equal(ta[k], tb[k])] == [], name


@pytest.fixture(scope="module")
def torchrun_reference(tmp_path_factory, digits_npy):
    """An uninterrupted 2-process torchrun run (the command of `torchrun`), the reference of the fault tests."""
    folder = tmp_path_factory.mktemp("torchrun-reference")
    ref = torchrun(folder, folder / "ref", digits_npy)
    _, err = ref.communicate(timeout=300)
    assert ref.returncode == 0, failure(err)
    return folder / "ref"


def test_a_worker_killed_under_torchrun_restarts_the_group_which_resumes_by_itself(tmp_path, torchrun_reference,
                                                                                   digits_npy):
    """torchrun --max-restarts 1; kill -9 of one worker after the first checkpoint: the agent restarts the group,
    the new processes find OUT.partial's checkpoint and resume from it without --resume, and the final weights equal
    an uninterrupted 2-process run's."""
    import signal

    from selfsup.training import checkpoint as ckpt_io

    victim = torchrun(tmp_path, tmp_path / "run", digits_npy, restarts=1)
    wait_for_file(ckpt_io.checkpoint_file(tmp_path / "run.partial"), [victim])
    workers = children(victim.pid)
    assert len(workers) == WORLD, workers
    os.kill(next(pid for pid in workers if torchrun_rank(pid) == 1), signal.SIGKILL)  # rank 1, mid-epoch
    out, err = victim.communicate(timeout=300)
    assert victim.returncode == 0, failure(err)
    assert "torchrun restarted the group: resuming" in err
    # Rank 0 reports, with whichever came first: its collective failing on the lost peer, or the agent's SIGTERM at a
    # step boundary (the checkpoint is written, then the group restarts from it).
    lost, stopped = "selfsup: error: another process of the torchrun group stopped", "selfsup: interrupted at step"
    said = [line for line in err.splitlines() if "selfsup" in line or "Error" in line]  # what the ranks reported
    assert (lost in err or stopped in err) and "internal error" not in err, "\n".join(said[-40:] + ["", err[-4000:]])
    summary = json.loads(out.strip().splitlines()[-1])["summary"]
    assert summary["resumed_from_step"] >= 5 and summary["steps"] == 4 * (1347 // 64)
    assert_same_encoder(torchrun_reference, tmp_path / "run")
    assert not (tmp_path / "run.partial").exists()


def test_two_nodes_on_the_loopback_train_and_resume_as_one_machine_does(tmp_path, torchrun_reference, digits_npy):
    """Two torchrun agents on this machine as two nodes of one process each (c10d rendezvous on 127.0.0.1, the
    commands of docs/long-runs.md): the gathered negatives span both nodes, so the run equals a one-node 2-process
    run bit for bit; kill -9 of the second node's worker restarts both nodes' groups, which resume from the
    checkpoint by themselves; one run directory is written."""
    import signal

    from selfsup.training import checkpoint as ckpt_io

    port = free_port()
    nodes = [torchrun(tmp_path, tmp_path / "run", digits_npy, "--nnodes", "2", "--rdzv-id", "selfsup-test", restarts=1,
                      nproc=1, port=port) for _ in range(2)]
    wait_for_file(ckpt_io.checkpoint_file(tmp_path / "run.partial"), nodes)
    worker = children(nodes[1].pid)
    assert len(worker) == 1, worker
    os.kill(worker[0], signal.SIGKILL)
    outputs = [node.communicate(timeout=300) for node in nodes]
    for node, (_, err) in zip(nodes, outputs):
        assert node.returncode == 0, failure(err)
    printed = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs if out.strip()]
    assert len(printed) == 1  # rank 0 alone reports, on whichever node it landed
    summary = printed[0]["summary"]
    assert summary["world_size"] == 2 and summary["resumed_from_step"] >= 5 and summary["steps"] == 4 * (1347 // 64)
    assert_same_encoder(torchrun_reference, tmp_path / "run")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_dead_rounds_store_address_is_told_at_once():
    """A process of a restarted group reads the store address the agent's store holds, which may be a dead round's:
    nothing listens there and the connection is refused at once (TCPStore's client would retry it for seconds)."""
    from selfsup.training.distributed import connect_once

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        connect_once("127.0.0.1", port)
    with pytest.raises(ConnectionRefusedError):
        connect_once("127.0.0.1", port)


def test_embed_with_two_processes_equals_one(tmp_path, digits_npy):
    """`torchrun ... selfsup embed`: each process encodes its share of the batches (3 batches of 512 over 2
    processes), rank 0 writes one file, equal to a single process's output bit for bit."""
    import numpy as np

    import selfsup

    run = tmp_path / "run"
    selfsup.train("digits", epochs=1, batch_size=256, encoder_options={"widths": [8, 16, 16, 16]}, out=run,
                  monitor=False, threads=1, method_options={"proj_hidden_dim": 32})
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each torchrun process (OMP_NUM_THREADS=1)
    try:
        one = run_cli("embed", run, "--data", f"npy:{digits_npy}", "--out", tmp_path / "one.npy")  # in this process
    finally:
        torch.set_num_threads(threads)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(WORLD),
                          "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "-m", "selfsup", "embed",
                          str(run), "--data", f"npy:{digits_npy}", "--out", str(tmp_path / "two.npy")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stderr.count("wrote ") == 1  # rank 0 alone writes and reports
    a, b = np.load(tmp_path / "one.npy"), np.load(tmp_path / "two.npy")
    assert a.shape == (1347, 16) and np.array_equal(a, b)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.npy", "run", "two.npy"]
