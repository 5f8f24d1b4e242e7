"""SIGTERM in a command: one line and status 143, never a silent death.

Python turns SIGINT into KeyboardInterrupt; SIGTERM it leaves at the default action, which ends the process at once,
without a word. While a command does its work (`sigterm_as_interrupt` around it, `stoppable` around the work), SIGTERM
raises `Terminated` instead, so the command stops as Ctrl-C stops it. That matters most when the signal comes while
the process is already failing: torchrun's agent sends SIGTERM to the group as soon as one worker dies, and a worker
whose collective has just failed on the lost peer would otherwise die before it says so (the CLI reports the failure
the signal interrupted). While the command reports how it ended, a SIGTERM is let pass: the command ends in a
moment with that report's status. The training loop installs its own handler (a checkpoint at the next step
boundary, training/loop.py) and restores this one.

SIGTERM is acted on between Python bytecodes: a process blocked in a long C call (a collective waiting on a hung
peer, a large scikit-learn fit) stops when the call returns, or when whoever sent the signal sends SIGKILL.

A process forked by the main thread while a command runs (a worker pool) starts with the default action, as it would
without selfsup, so a pool's terminate() that comes at once after the fork still ends the worker (a Python-level
handler would lose that signal: the interpreter drops signals that arrive before its after-fork set-up); the parent
is without its handler for the length of the fork. Off POSIX, or outside the main thread, nothing changes.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Any, Iterator


class Terminated(KeyboardInterrupt):
    """SIGTERM received while a command does its work, outside the training loop's own handling."""


def signal_number(exc: KeyboardInterrupt) -> int:
    """The signal behind an interruption: SIGTERM for Terminated, else SIGINT (exit status 128 + it)."""
    return int(signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)


_NONE = object()


class _State:
    owner: int | None = None  # the process whose command installed the handler; None while no command runs
    working = False  # the command's work runs (a SIGTERM stops it), not its report
    during_fork: Any = _NONE  # the handler the main thread set aside while it forks


def _handle(signum: int, frame: Any) -> None:
    if _State.working:
        raise Terminated("terminated")


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _before_fork() -> None:
    if _State.owner == os.getpid() and _in_main_thread():
        _State.during_fork = signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _after_fork_in_parent() -> None:
    if _State.during_fork is not _NONE:
        previous, _State.during_fork = _State.during_fork, _NONE
        signal.signal(signal.SIGTERM, previous)


def _after_fork_in_child() -> None:  # the default action was inherited; the command is the parent's
    _State.owner, _State.working, _State.during_fork = None, False, _NONE


if os.name == "posix":
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                        after_in_child=_after_fork_in_child)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Around a command (in the main thread, on POSIX, not nested): SIGTERM raises Terminated inside `stoppable`
    blocks and is let pass outside them; the previous handler comes back at the end."""
    if os.name != "posix" or not _in_main_thread() or _State.owner is not None:
        yield
        return
    previous = signal.signal(signal.SIGTERM, _handle)
    _State.owner = os.getpid()
    try:
        yield
    finally:
        _State.owner, _State.working = None, False
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def stoppable() -> Iterator[None]:
    """The command's work: a SIGTERM now raises Terminated."""
    _State.working = True
    try:
        yield
    finally:
        _State.working = False
