"""SIGTERM in a command: one line and status 143, never a silent death.

Python turns SIGINT into KeyboardInterrupt; SIGTERM it leaves at the default action, which ends the process at once,
without a word. While a command runs (`sigterm_as_interrupt`), SIGTERM raises `Terminated` instead, so the command
stops as Ctrl-C stops it. That matters most when the signal comes while the process is already failing: torchrun's
agent sends SIGTERM to the group as soon as one worker dies, and a worker whose collective has just failed on the
lost peer would otherwise die before it says so (the CLI reports the failure the signal interrupted). The training
loop installs its own handler (a checkpoint at the next step boundary, training/loop.py) and restores this one.

A process forked while a command runs (a worker pool) keeps the default action: SIGTERM is blocked across the fork
and unblocked in the child only after the child has put the default back, so a pool's terminate() that comes at once
after the fork still ends the worker (a Python-level handler would lose it: the interpreter drops signals that arrive
before its after-fork set-up). Outside the main thread, or off POSIX, nothing changes.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Any, Iterator


class Terminated(KeyboardInterrupt):
    """SIGTERM received by a command outside the training loop's own handling."""


def signal_number(exc: KeyboardInterrupt) -> int:
    """The signal behind an interruption: SIGTERM for Terminated, else SIGINT (exit status 128 + it)."""
    return int(signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)


_owner: int | None = None  # the process whose command turns SIGTERM into Terminated; None while no command runs
_mask_before_fork: set[int] | None = None


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated("terminated")


def _before_fork() -> None:
    global _mask_before_fork
    if _owner == os.getpid():
        _mask_before_fork = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})


def _after_fork(in_child: bool) -> None:
    global _mask_before_fork, _owner
    if _mask_before_fork is None:
        return
    if in_child:
        _owner = None
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, _mask_before_fork)
    _mask_before_fork = None


if os.name == "posix":
    os.register_at_fork(before=_before_fork, after_in_parent=lambda: _after_fork(False),
                        after_in_child=lambda: _after_fork(True))


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While the block runs (in the main thread, on POSIX, and not nested), SIGTERM raises Terminated."""
    global _owner
    if os.name != "posix" or threading.current_thread() is not threading.main_thread() or _owner is not None:
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    _owner = os.getpid()
    try:
        yield
    finally:
        _owner = None
        signal.signal(signal.SIGTERM, previous)
