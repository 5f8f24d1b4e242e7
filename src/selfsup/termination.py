"""SIGTERM in a command: one line and status 143, never a silent death.

Python turns SIGINT into KeyboardInterrupt; SIGTERM it leaves at the default action, which ends the process at once,
without a word. While a command does its work (`sigterm_as_interrupt` around it, `stoppable` around the work), SIGTERM
raises `Terminated` instead, so the command stops as Ctrl-C stops it. That matters most when the signal comes while
the process is already failing: torchrun's agent sends SIGTERM to the group as soon as one worker dies, and a worker
whose collective has just failed on the lost peer would otherwise die before it says so (the CLI reports the failure
the signal interrupted). While the command reports how it ended, a SIGTERM is ignored: the command ends in a moment
with that report's status. One that comes between the handler's installation and the work stops the work as it
starts. The training loop installs its own handler (a checkpoint at the next step boundary, training/loop.py) and
restores this one.

SIGTERM is acted on between Python bytecodes: a process blocked in a long C call (a collective waiting on a hung
peer, a large scikit-learn fit) stops when the call returns, or when whoever sent the signal sends SIGKILL.

A process forked while a command runs (a worker pool, from any thread) starts with SIGTERM's default action, as it
would without selfsup, so a pool's terminate() that comes at once after the fork still ends the worker (a
Python-level handler would lose that signal: the interpreter drops signals that arrive before its after-fork
set-up). The forking thread holds SIGTERM back for the length of the fork, and the child takes the default action
before it lets it through; the parent gets a signal that came meanwhile after the fork. One exception: when the
main thread forks with this module's handler installed, the handler is set aside for the fork instead (delivered
inside the after-fork hook, its Terminated would be swallowed by the interpreter), and a SIGTERM in that window ends
the parent as it would without selfsup. Off POSIX nothing changes.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Any, Iterator


class Terminated(KeyboardInterrupt):
    """SIGTERM received while a command does its work (or a second one while training stops on the first)."""


def signal_number(exc: KeyboardInterrupt) -> int:
    """The signal behind an interruption: SIGTERM for Terminated, else SIGINT (exit status 128 + it)."""
    return int(signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)


class _State:
    owner: int | None = None  # the process whose command installed the handler; None while no command runs
    working = False  # the command's work runs (a SIGTERM stops it), not its report
    pending = False  # a SIGTERM came while no work ran


class _ForkSaved(threading.local):
    """Per forking thread: ("handler", the handler set aside) or ("mask", the signal mask before the fork)."""

    saved: tuple[str, Any] | None = None


_fork = _ForkSaved()


def _handle(signum: int, frame: Any) -> None:
    if _State.working:
        raise Terminated("terminated")
    _State.pending = True


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _before_fork() -> None:
    _fork.saved = None
    if _State.owner != os.getpid():
        return
    if _in_main_thread() and signal.getsignal(signal.SIGTERM) is _handle:
        _fork.saved = ("handler", signal.signal(signal.SIGTERM, signal.SIG_DFL))
    else:
        _fork.saved = ("mask", signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM}))


def _after_fork(in_child: bool) -> None:
    saved, _fork.saved = _fork.saved, None
    if in_child:  # the command is the parent's
        _State.owner, _State.working, _State.pending = None, False, False
    if saved is None:
        return
    kind, value = saved
    if kind == "handler":
        if not in_child:  # the child keeps the default action it was forked with
            signal.signal(signal.SIGTERM, value)
        return
    if in_child:  # the forking thread is the child's main thread
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, value)


if os.name == "posix":
    os.register_at_fork(before=_before_fork, after_in_parent=lambda: _after_fork(False),
                        after_in_child=lambda: _after_fork(True))


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Around a command (in the main thread, on POSIX, not nested): SIGTERM raises Terminated inside `stoppable`
    blocks and is ignored outside them; the previous handler comes back at the end."""
    if os.name != "posix" or not _in_main_thread() or _State.owner is not None:
        yield
        return
    _State.pending = False
    previous = signal.signal(signal.SIGTERM, _handle)
    _State.owner = os.getpid()
    try:
        yield
    finally:
        _State.owner, _State.working, _State.pending = None, False, False
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def stoppable() -> Iterator[None]:
    """The command's work: a SIGTERM now raises Terminated (at once, for one that came since the handler was set)."""
    before = _State.working
    _State.working = True
    try:
        if _State.pending:
            _State.pending = False
            raise Terminated("terminated")
        yield
    finally:
        _State.working = before
