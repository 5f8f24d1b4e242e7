"""Crash-safe checkpoints: a run killed with SIGKILL (or stopped with Ctrl-C) at a random step after its first
checkpoint, then resumed with --resume, ends with weights bit-identical to an uninterrupted run (CPU, same seed
and threads). Exact resume is promised for --epochs runs; --minutes runs continue their remaining time budget."""
import json
import math
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch
from safetensors.torch import load_file

import selfsup
from selfsup.training import checkpoint as ckpt_io
from selfsup.training.loop import FAULT_NONFINITE_STEP
from selfsup.training.session import resume
from conftest import run_cli

SMALL = {"widths": [16, 32, 32, 32]}
TIMING = ("elapsed_s", "samples_per_s")


@pytest.fixture(autouse=True)
def one_thread():
    """In-process runs use one thread (as the CLI runs do with --threads 1): fast on a busy 2-core machine."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def cli(*args):
    return [sys.executable, "-m", "selfsup", *map(str, args)]


def assert_same_weights(a, b):
    for name in ("encoder.safetensors", "method.safetensors"):
        ta, tb = load_file(str(a / name)), load_file(str(b / name))
        assert ta.keys() == tb.keys()
        different = [k for k in ta if not torch.equal(ta[k], tb[k])]
        assert not different, (name, different[:5])


def records(run):
    """metrics.jsonl without wall-clock fields: identical for identical training."""
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in open(run / "metrics.jsonl")]


def wait_for(path, proc=None, timeout=240):
    deadline = time.time() + timeout
    while not path.exists():
        assert proc is None or proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def test_sigkill_at_a_random_step_then_resume_is_bit_identical(tmp_path):
    """BYOL (LARS momentum buffers, EMA target network, momentum schedule) killed with SIGKILL."""
    args = ["train", "--data", "digits", "--method", "byol", "--epochs", "4", "--batch-size", "64", "--seed", "3",
            "--encoder-option", "widths=[16,32,32,32]", "--method-option", "proj_hidden_dim=128",
            "--method-option", "pred_hidden_dim=128", "--method-option", "proj_dim=64", "--no-monitor",
            "--threads", "1", "--checkpoint-every", "4", "--no-eval", "--quiet"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    ref = subprocess.Popen(cli(*args, "--out", tmp_path / "ref"), env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    victim = subprocess.Popen(cli(*args, "--out", tmp_path / "run"), env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    ckpt = ckpt_io.checkpoint_file(tmp_path / "run.partial")
    wait_for(ckpt, victim)
    seed = random.randrange(10**6)
    delay = random.Random(seed).uniform(0.0, 0.25)  # 80 of the 84 steps are left: a second on a fast machine
    time.sleep(delay)
    assert victim.poll() is None, f"the run ended before the kill (seed {seed})"
    victim.send_signal(signal.SIGKILL)
    victim.communicate()
    assert victim.returncode == -signal.SIGKILL
    assert not (tmp_path / "run").exists() and not (tmp_path / "run.partial" / "summary.json").exists()
    killed_at = ckpt_io.load(ckpt).step
    assert 4 <= killed_at < 84 and killed_at % 4 == 0, killed_at  # 4 epochs x 21 steps
    proc = run_cli("train", "--resume", tmp_path / "run", "--no-eval", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)["summary"]
    assert summary["resumed_from_step"] == killed_at and summary["steps"] == 84
    _, err = ref.communicate(timeout=300)
    assert ref.returncode == 0, err
    assert_same_weights(tmp_path / "ref", tmp_path / "run")
    assert records(tmp_path / "ref") == records(tmp_path / "run")
    assert not (tmp_path / "run.partial").exists()


def test_ctrl_c_writes_a_checkpoint_and_resume_matches(tmp_path):
    """MoCo (queue + pointer, EMA key encoder, SGD momentum) stopped by SIGINT in this process."""
    opts = dict(method="moco", epochs=6, batch_size=64, seed=1, encoder_options=SMALL, monitor=False,
                method_options={"proj_hidden_dim": 128, "proj_dim": 32}, checkpoint_every_steps=5, log_every=4, threads=1)
    selfsup.train("digits", out=tmp_path / "ref", **opts)
    ckpt = ckpt_io.checkpoint_file(tmp_path / "run.partial")

    def press_ctrl_c():
        wait_for(ckpt)
        time.sleep(random.uniform(0.0, 0.3))
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=press_ctrl_c, daemon=True).start()
    with pytest.raises(KeyboardInterrupt) as info:
        selfsup.train("digits", out=tmp_path / "run", **opts)
    message = str(info.value)
    assert "checkpoint saved" in message and "--resume" in message and "\n" not in message
    stopped = ckpt_io.load(ckpt).step
    assert info.value.step == stopped and 5 <= stopped < 126
    assert not (tmp_path / "run").exists()
    with pytest.raises(selfsup.SelfSupError, match="not a complete run|no such run"):
        selfsup.load(tmp_path / "run")
    run = resume(tmp_path / "run", progress=False)
    assert run.summary["resumed_from_step"] == stopped
    assert_same_weights(tmp_path / "ref", tmp_path / "run")
    assert records(tmp_path / "ref") == records(tmp_path / "run")


def test_checkpoint_holds_the_whole_training_state(tmp_path):
    selfsup.train("digits", method="byol", epochs=1, batch_size=64, encoder_options=SMALL, out=tmp_path / "r", threads=1,
                   method_options={"proj_hidden_dim": 64, "pred_hidden_dim": 64}, checkpoint_every_steps=100)
    ck = ckpt_io.load(ckpt_io.checkpoint_file(tmp_path / "r"))  # the final checkpoint stays with the run
    pos = ck.state["position"]
    assert pos["finished"] and pos["steps"] == 21 and pos["epoch"] == 1
    names = set(ck.tensors)
    assert any(n.startswith("model/target_encoder.") for n in names)  # EMA target network
    assert any(n.startswith("optim/") and n.endswith("momentum_buffer") for n in names)  # LARS momentum
    assert {"rng/0/gen_data", "rng/0/torch_cpu", "loop/losses"} <= names
    # BYOL's tau is a function of progress (no hidden state to checkpoint); the trainer logs the value it applied
    assert ck.state["method_state"] == {}
    logged = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    taus = {r["step"]: r["target_momentum"] for r in logged if "target_momentum" in r}
    assert taus[1] == pytest.approx(0.99 + 0.01 * (1 - math.cos(math.pi / 21)) / 2)  # 0.99 -> 1 on a cosine
    assert taus[20] == pytest.approx(1 - 0.01 * (1 + math.cos(math.pi * 20 / 21)) / 2) and taus[20] > 0.9999
    assert ck.state["metrics_bytes"] == (tmp_path / "r" / "metrics.jsonl").stat().st_size
    assert ck.state["config"]["method"] == "byol" and ck.state["world_size"] == 1
    assert ck.state["hooks"] and "best_rankme" in ck.state["hooks"][0]  # monitor state (select rankme)


def test_resume_refuses_what_it_cannot_continue(tmp_path):
    selfsup.train("digits", epochs=1, batch_size=128, encoder_options=SMALL, out=tmp_path / "done", monitor=False, threads=1,
                  method_options={"proj_hidden_dim": 64})
    with pytest.raises(selfsup.SelfSupError, match="already complete"):
        resume(tmp_path / "done")
    with pytest.raises(selfsup.SelfSupError, match="no checkpoint"):
        resume(tmp_path / "missing")
    with pytest.raises(selfsup.SelfSupError, match="drop --lr"):
        resume(tmp_path / "done", overrides={"lr": 0.1})


def test_short_run_checkpoints_at_its_first_epoch_end_and_resumes_exactly(tmp_path, monkeypatch):
    """No --checkpoint-every and the default 10-minute interval: a run that fails in its second epoch still leaves
    the checkpoint of its first epoch's end, and resuming from it gives the uninterrupted run's weights."""
    opts = dict(method="byol", epochs=3, batch_size=256, seed=2, encoder_options=SMALL, monitor=False,
                method_options={"proj_hidden_dim": 64, "pred_hidden_dim": 64}, threads=1)
    selfsup.train("digits", out=tmp_path / "ref", **opts)
    steps_per_epoch = 1347 // 256
    monkeypatch.setenv(FAULT_NONFINITE_STEP, str(steps_per_epoch + 3))  # dies in epoch 2, before 10 minutes
    with pytest.raises(selfsup.SelfSupError, match=f"last good checkpoint \\(step {steps_per_epoch}\\)"):
        selfsup.train("digits", out=tmp_path / "run", **opts)
    assert ckpt_io.load(ckpt_io.checkpoint_file(tmp_path / "run.partial")).step == steps_per_epoch
    monkeypatch.delenv(FAULT_NONFINITE_STEP)
    run = resume(tmp_path / "run", progress=False)
    assert run.summary["resumed_from_step"] == steps_per_epoch
    assert_same_weights(tmp_path / "ref", tmp_path / "run")


MULTI_CROP_OFF = {"local_crops": 0}  # 8 x 8 digits: no room for local crops in ConvNet-4
NEW_STATE = {  # method -> options exercising its own state (the names say which)
    "dino": {"out_dim": 64, "hidden_dim": 64, "bottleneck_dim": 32, **MULTI_CROP_OFF},  # centre, teacher, frozen layer
    "swav": {"num_prototypes": 30, "proj_hidden_dim": 64, "queue_length": 512, "queue_start": 0.0,
             **MULTI_CROP_OFF},  # prototypes, queue and its fill count
    "nnclr": {"proj_hidden_dim": 64, "pred_hidden_dim": 64, "queue_size": 512},  # support queue
    "mocov3": {"proj_hidden_dim": 64, "pred_hidden_dim": 64},  # momentum encoder
    "deepcluster_v2": {"num_prototypes": 30, "proj_hidden_dim": 64, **MULTI_CROP_OFF},  # memory bank, k-means labels
    "sela": {"num_prototypes": 30, "proj_hidden_dim": 64, **MULTI_CROP_OFF},  # memory bank, prototypes, labels
}


@pytest.mark.parametrize("method", sorted(NEW_STATE))
def test_resume_inside_an_epoch_restores_each_methods_state(method, tmp_path, monkeypatch):
    """A run that dies in its third epoch resumes from a checkpoint in the middle of its second (queues, centre,
    memory bank and pseudo-labels restored; the third epoch's per-epoch clustering runs again after the resume)
    and ends with the uninterrupted run's weights, bit for bit."""
    assert_resumed_inside_an_epoch_exactly(tmp_path, monkeypatch, method=method, encoder_options=SMALL,
                                           method_options=NEW_STATE[method])


def assert_resumed_inside_an_epoch_exactly(tmp_path, monkeypatch, **options):
    """Digits for 3 epochs of 5 steps with a checkpoint every 7 steps: a run that dies at step 12 resumes from step 7
    (inside epoch 1) and ends with the uninterrupted run's weights, bit for bit."""
    opts = dict(epochs=3, batch_size=256, seed=4, monitor=False, checkpoint_every_steps=7, threads=1, **options)
    selfsup.train("digits", out=tmp_path / "ref", **opts)
    monkeypatch.setenv(FAULT_NONFINITE_STEP, "12")  # 5 steps an epoch: the last good checkpoint is step 7
    with pytest.raises(selfsup.SelfSupError, match="last good checkpoint \\(step 7\\)"):
        selfsup.train("digits", out=tmp_path / "run", **opts)
    monkeypatch.delenv(FAULT_NONFINITE_STEP)
    run = resume(tmp_path / "run", progress=False)
    assert run.summary["resumed_from_step"] == 7
    assert_same_weights(tmp_path / "ref", tmp_path / "run")


def test_a_flipped_byte_is_found_and_resume_uses_the_checkpoint_before_it(tmp_path, monkeypatch):
    """The last two checkpoints are kept; a byte flipped on disk in the latest one is caught by its checksum,
    reported in one warning line, and the run resumes from the one before it, bit-identical to an uninterrupted
    run. A finished run keeps its last checkpoint only."""
    opts = dict(method="byol", epochs=4, batch_size=256, seed=3, encoder_options=SMALL, monitor=False, threads=1,
                checkpoint_every_steps=5, method_options={"proj_hidden_dim": 64, "pred_hidden_dim": 64})
    selfsup.train("digits", out=tmp_path / "ref", **opts)
    assert not ckpt_io.checkpoint_files(tmp_path / "ref")[1].exists()
    monkeypatch.setenv(FAULT_NONFINITE_STEP, "17")  # checkpoints at steps 5, 10, 15; dies at 17
    with pytest.raises(selfsup.SelfSupError, match="last good checkpoint \\(step 15\\)"):
        selfsup.train("digits", out=tmp_path / "run", **opts)
    monkeypatch.delenv(FAULT_NONFINITE_STEP)
    latest, previous = ckpt_io.checkpoint_files(tmp_path / "run.partial")
    assert ckpt_io.load(latest).step == 15 and ckpt_io.load(previous).step == 10
    data = bytearray(latest.read_bytes())
    data[-3] ^= 0x10  # one bit of the last tensor's bytes
    latest.write_bytes(bytes(data))
    with pytest.raises(selfsup.SelfSupError, match="damaged checkpoint.*checksum"):
        ckpt_io.load(latest)
    with pytest.warns(UserWarning, match="damaged checkpoint.*step 10"):
        run = resume(tmp_path / "run", progress=False)
    assert run.summary["resumed_from_step"] == 10
    assert_same_weights(tmp_path / "ref", tmp_path / "run")
    assert not ckpt_io.checkpoint_files(tmp_path / "run")[1].exists()
