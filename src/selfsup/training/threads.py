"""How many CPU threads a training process should use while other work shares its CPUs.

PyTorch's CPU kernels run OpenMP parallel regions that end in a barrier: with T threads on T cores, a
region lasts as long as its slowest thread. When another process takes one of those cores, the
thread that the scheduler displaced holds every region up, and the other threads spin at the
barrier, stealing more time from the other process, which in turn waits for its own displaced
thread. Two 2-thread runs on 2 cores were measured 4.6x slower than running them one after the
other; with one thread each they finished together in the time of 1.5 runs alone.

`CpuShare` measures, over a sliding window, how much CPU time *other* processes used on the CPUs this
process may run on (busy time of those CPUs from /proc/stat, minus this process's own CPU time),
and sets ``torch.set_num_threads`` to the cores left over (at least 1, at most the thread count set
when training starts; a process capped at one thread decides at once, without a measuring window), checked again
every few seconds during training: a run alone keeps all its
threads, two runs at once settle on a share each, and a run whose neighbour finished takes its
threads back. It is used only when ``--threads`` is not given and the encoder is not compiled
(inductor's CPU kernels fix their thread count when compiled); a fixed ``--threads N`` is never
changed (bit-identical reruns need the same thread count, so pass it when that matters). Where the
counters cannot be read (not Linux), nothing changes. Under a cgroup v2 CPU quota (a container's
``--cpus``), the quota caps the thread count and "other work" is the CPU time the rest of the cgroup
used (its cpu.stat), not the whole host's.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Callable

import torch

CHECK_EVERY_S = 2.0  # how often the share is re-measured during training
MIN_WINDOW_S = 0.2  # the first decision waits for at least this much measured time
# CPU time fields of /proc/stat that count as busy: user nice system (idle iowait) irq softirq; steal and
# guest (counted in user already) are left out: a hypervisor's steal is not a process competing here.
_BUSY_FIELDS = (0, 1, 2, 5, 6)


def allowed_cpus() -> list[int]:
    """The CPU ids this process may run on."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


# the clock, CPU-time and sleep functions this module uses (tests replace these, not the `time` module's)
_now, _cpu_time, _sleep = time.perf_counter, time.process_time, time.sleep


def own_cgroup(root: Path = Path("/sys/fs/cgroup"), listing: Path = Path("/proc/self/cgroup")) -> Path:
    """This process's cgroup v2 folder (from /proc/self/cgroup's '0::/PATH' line), else the root."""
    try:
        for line in listing.read_text().splitlines():
            if line.startswith("0::"):
                folder = root / line[3:].strip().lstrip("/")
                if (folder / "cpu.max").exists():
                    return folder
    except OSError:
        pass
    return root


def cgroup_cpu_limit(root: Path | None = None) -> float | None:
    """CPUs granted by a cgroup v2 quota (cpu.max 'quota period'), or None without a quota."""
    root = own_cgroup() if root is None else root
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None


def busy_seconds(cpus: list[int], stat: Path = Path("/proc/stat")) -> float | None:
    """Busy CPU time (seconds since boot) summed over `cpus`, from /proc/stat; None when unreadable."""
    wanted = {f"cpu{c}" for c in cpus}
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0
    found = 0
    try:
        with open(stat) as f:
            for line in f:
                name, _, rest = line.partition(" ")
                if name in wanted:
                    values = rest.split()
                    total += sum(int(values[i]) for i in _BUSY_FIELDS if i < len(values))
                    found += 1
    except (OSError, ValueError):
        return None
    return total / ticks if found else None


def cgroup_busy_seconds(root: Path) -> float | None:
    """CPU time (seconds) used by every process of the cgroup at `root` (cpu.stat usage_usec); None if unreadable."""
    try:
        for line in (root / "cpu.stat").read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == "usage_usec":
                return int(value) / 1e6
    except (OSError, ValueError):
        return None
    return None


def threads_for(cpus: float, others_busy: float, cap: int) -> int:
    """Threads to use: the cores left over by other processes (their load rounded to the nearest core), 1..cap."""
    free = math.floor(cpus + 1e-9) - math.floor(others_busy + 0.5)
    return max(1, min(cap, free))


class CpuShare:
    """Adapts this process's PyTorch thread count to the CPU time other processes use (see the module doc)."""

    def __init__(self, cap: int | None = None, check_every_s: float = CHECK_EVERY_S) -> None:
        self.cpus_list = allowed_cpus()
        cgroup = own_cgroup()
        limit = cgroup_cpu_limit(cgroup)
        self.cpus = float(len(self.cpus_list)) if limit is None else min(len(self.cpus_list), max(1.0, limit))
        # under a quota the host's other CPUs' load is not ours to share: measure the rest of our cgroup instead
        self._busy: Callable[[], float | None] = (lambda: busy_seconds(self.cpus_list)) if limit is None \
            else (lambda: cgroup_busy_seconds(cgroup))
        self.cap = max(1, min(cap or torch.get_num_threads(), math.floor(self.cpus + 1e-9)))
        self.check_every_s = check_every_s
        self.changes: list[dict[str, float]] = []
        self._last = self._sample()
        self.enabled = self._last is not None

    def _sample(self) -> tuple[float, float, float] | None:
        busy = self._busy()
        return None if busy is None else (_now(), busy, _cpu_time())

    def others_busy(self) -> float | None:
        """Cores' worth of CPU time other processes used since the last measurement (and restart the window);
        None when the counters could not be read this time (the window then goes on)."""
        now = self._sample()
        if now is None or self._last is None:
            self._last = now or self._last
            return None
        wall = now[0] - self._last[0]
        if wall <= 0:
            return None
        busy, own = now[1] - self._last[1], now[2] - self._last[2]
        self._last = now
        return max(0.0, busy - own) / wall

    def start(self) -> int:
        """The first decision, from the time since construction (at least MIN_WINDOW_S); returns the threads."""
        if not self.enabled:
            return torch.get_num_threads()
        waited = _now() - self._last[0]
        if waited < MIN_WINDOW_S and self.cap > 1:  # capped at one thread, the measure cannot change the decision
            _sleep(MIN_WINDOW_S - waited)
        return self._apply()

    def maybe_update(self) -> int | None:
        """Re-measure if CHECK_EVERY_S have passed; returns the new thread count when it changed."""
        if not self.enabled or _now() - self._last[0] < self.check_every_s:
            return None
        before = torch.get_num_threads()
        after = self._apply()
        return after if after != before else None

    def _apply(self) -> int:
        others = self.others_busy()
        if others is None:
            return torch.get_num_threads()
        threads = threads_for(self.cpus, others, self.cap)
        if threads != torch.get_num_threads():
            torch.set_num_threads(threads)
            self.changes.append({"threads": threads, "others_busy": round(others, 2)})
        return threads
