"""The adaptive thread count (training/threads.py): other processes' CPU time is measured, and the training
process keeps only the cores they leave over; a fixed --threads is never changed."""
import subprocess
import sys
import time

import pytest
import torch

from selfsup.training import threads
from selfsup.training.threads import CpuShare, busy_seconds, threads_for


def test_threads_for_leaves_the_cores_other_processes_use():
    assert threads_for(2, 0.0, 2) == 2
    assert threads_for(2, 0.3, 2) == 2  # light background work (a shell, a logger) does not cost a thread
    assert threads_for(2, 1.0, 2) == 1  # another run on one core: one thread each
    assert threads_for(2, 1.9, 2) == 1  # never fewer than one
    assert threads_for(8, 2.6, 8) == 5
    assert threads_for(8, 0.0, 4) == 4  # never more than the cap (PyTorch's default or OMP_NUM_THREADS)
    assert threads_for(1.5, 0.0, 2) == 1  # a cgroup quota of 1.5 CPUs


def test_busy_seconds_sums_the_allowed_cpus(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  50 0 50 900 0 0 0 0 0 0\n"
                    "cpu0 10 1 20 400 5 2 3 7 0 0\n"
                    "cpu1 30 0 10 500 0 0 0 0 0 0\n"
                    "intr 12345\n")
    hz = threads.os.sysconf("SC_CLK_TCK")
    assert busy_seconds([0], stat) == pytest.approx((10 + 1 + 20 + 2 + 3) / hz)  # idle, iowait, steal left out
    assert busy_seconds([0, 1], stat) == pytest.approx((36 + 40) / hz)
    assert busy_seconds([5], stat) is None
    assert busy_seconds([0], tmp_path / "missing") is None


class FakeClock:
    """perf_counter, process_time and /proc/stat busy time of a scripted machine."""

    def __init__(self):
        self.wall, self.own, self.busy = 0.0, 0.0, 0.0

    def advance(self, seconds, own_cores, other_cores):
        self.wall += seconds
        self.own += seconds * own_cores
        self.busy += seconds * (own_cores + other_cores)


@pytest.fixture
def fake_machine(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(threads, "allowed_cpus", lambda: [0, 1])
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda root=None: None)
    monkeypatch.setattr(threads, "busy_seconds", lambda cpus: clock.busy)
    monkeypatch.setattr(threads, "_now", lambda: clock.wall)
    monkeypatch.setattr(threads, "_cpu_time", lambda: clock.own)
    monkeypatch.setattr(threads, "_sleep", lambda s: clock.advance(s, 1.0, 0.0))
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # as on a quiet 2-core machine, whatever an earlier test left
    yield clock
    torch.set_num_threads(before)


def test_cpu_share_gives_way_to_another_run_and_takes_its_threads_back(fake_machine):
    clock = fake_machine
    share = CpuShare(cap=2, check_every_s=2.0)
    clock.advance(1.0, own_cores=1.0, other_cores=1.0)  # set-up while another run trains
    assert share.start() == 1 and torch.get_num_threads() == 1
    clock.advance(1.0, 1.0, 1.0)
    assert share.maybe_update() is None  # not yet time to re-measure
    clock.advance(1.5, 1.0, 1.0)
    assert share.maybe_update() is None and torch.get_num_threads() == 1  # the other run goes on: keep one
    clock.advance(2.5, 1.0, 0.05)  # the other run ended
    assert share.maybe_update() == 2 and torch.get_num_threads() == 2
    assert [c["threads"] for c in share.changes] == [1, 2]


def test_cpu_share_keeps_all_threads_alone(fake_machine):
    clock = fake_machine
    share = CpuShare(cap=2)
    clock.advance(0.05, 1.0, 0.0)  # a short set-up: start() waits for the rest of MIN_WINDOW_S
    assert share.start() == 2 and clock.wall >= threads.MIN_WINDOW_S
    for _ in range(5):
        clock.advance(3.0, 2.0, 0.1)
        share.maybe_update()
    assert torch.get_num_threads() == 2 and share.changes == []


def test_a_share_capped_at_one_thread_starts_without_waiting(fake_machine):
    """One thread is all such a process may use, whatever the others do: start() decides at once (no measuring
    window), where a process that may use two waits for MIN_WINDOW_S (the control)."""
    clock = fake_machine
    torch.set_num_threads(1)
    assert CpuShare().start() == 1 and clock.wall == 0.0
    torch.set_num_threads(2)
    assert CpuShare().start() == 2 and clock.wall >= threads.MIN_WINDOW_S


@pytest.mark.skipif(busy_seconds([0]) is None, reason="needs Linux /proc/stat")
def test_cpu_share_measures_a_real_busy_process():
    """A child process spinning on one CPU is seen as about one core of other work."""
    child = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 3: pass"])
    try:
        time.sleep(0.3)
        share = CpuShare()
        time.sleep(1.0)
        others = share.others_busy()
    finally:
        child.kill()
        child.wait()
    assert others is not None and others > 0.6, others


def test_a_thread_count_left_by_another_process_is_used_during_training_and_restored(monkeypatch):
    import selfsup

    torch.set_num_threads(2)
    monkeypatch.setattr(threads, "threads_for", lambda cpus, others, cap: 1)  # as if another run shared the CPUs
    tiny = dict(epochs=1, batch_size=256, encoder_options={"widths": [8, 8, 8, 8]},
                method_options={"proj_hidden_dim": 16}, monitor=False)
    run = selfsup.train("digits", method="simclr", **tiny)
    assert run.summary["threads_policy"].startswith("adaptive") and run.summary["threads"] == 1
    assert run.summary["thread_changes"][0]["threads"] == 1
    assert torch.get_num_threads() == 2  # restored when training returns
    run = selfsup.train("digits", method="simclr", threads=1, **tiny)  # fixed: never adapted, also restored
    assert run.summary["threads_policy"] == "fixed (--threads)" and run.summary["threads"] == 1
    assert "thread_changes" not in run.summary and torch.get_num_threads() == 2


def test_quota_makes_the_cgroup_the_measure(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    (tmp_path / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 2000000\n")
    assert threads.cgroup_cpu_limit(tmp_path) == pytest.approx(1.5)
    assert threads.cgroup_busy_seconds(tmp_path) == pytest.approx(2.5)
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert threads.cgroup_cpu_limit(tmp_path) is None
