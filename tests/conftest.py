"""Shared fixtures: a quiet 2-thread torch and small trained runs reused across tests."""
import contextlib
import functools
import io
import os
import subprocess
import sys
import tempfile
import warnings

import pytest
import torch

# two threads, or one in each worker process of pytest-xdist (two workers at two threads on two cores spin idle)
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else 2)
FASHION_MNIST = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"


def run_cli_process(*args, cwd=None, timeout=600):
    """Run `python -m selfsup ARGS` in a subprocess; returns CompletedProcess with text output."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "selfsup", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=env)


@contextlib.contextmanager
def captured_descriptors():
    """Point file descriptors 1 and 2, and sys.stdout / sys.stderr with them, at temporary files; yields a function
    that returns what was written (stdout, stderr). Output at the descriptor level is caught too (C libraries,
    child processes), as a subprocess's pipes would catch it."""
    sys.stdout.flush(), sys.stderr.flush()
    files = {fd: tempfile.TemporaryFile() for fd in (1, 2)}
    saved = {fd: os.dup(fd) for fd in files}
    streams = (sys.stdout, sys.stderr)
    try:
        for fd, f in files.items():
            os.dup2(f.fileno(), fd)
        sys.stdout, sys.stderr = (io.TextIOWrapper(open(fd, "wb", closefd=False), encoding="utf-8",
                                                   line_buffering=True) for fd in (1, 2))

        def read() -> tuple[str, str]:
            sys.stdout.flush(), sys.stderr.flush()
            texts = []
            for f in files.values():
                f.seek(0)
                texts.append(f.read().decode("utf-8", errors="replace"))
            return texts[0], texts[1]

        yield read
    finally:
        sys.stdout.flush(), sys.stderr.flush()
        sys.stdout, sys.stderr = streams
        for fd, f in files.items():
            os.dup2(saved[fd], fd)
            os.close(saved[fd])
            f.close()


# the warnings a fresh interpreter hides (Python's default filters); the others it shows
HIDDEN_BY_PYTHON = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


def run_cli(*args, cwd=None, show_warnings=False):
    """Run the command line in this process, as `python -m selfsup ARGS` runs it (exit code, stdout, stderr at the
    descriptor level; warnings ignored as PYTHONWARNINGS=ignore does, or with `show_warnings` filtered as a fresh
    interpreter filters them), without a new interpreter's start-up and imports of torch; the working folder and
    torch's thread count are restored afterwards. `run_cli_process` is the real process, for the tests about one."""
    from selfsup.cli import main

    argv = [str(a) for a in args]
    before, threads = os.getcwd(), torch.get_num_threads()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with captured_descriptors() as read, warnings.catch_warnings():
            warnings.resetwarnings()
            for category in HIDDEN_BY_PYTHON if show_warnings else (Warning,):
                warnings.simplefilter("ignore", category)
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse's --help and usage errors
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            out, err = read()
    finally:
        os.chdir(before)
        torch.set_num_threads(threads)
    return subprocess.CompletedProcess(["selfsup", *argv], code, out, err)


def toy_samples(modality_name: str, n: int = 48, seed: int = 0):
    """A copy of a modality's toy data, generated once a process (the contract and precision tests of every method
    ask for the same samples; a graph or an audio clip takes milliseconds to make, a copy microseconds)."""
    import copy

    return copy.deepcopy(_toy_samples(modality_name, n, seed))


@functools.cache
def _toy_samples(modality_name: str, n: int, seed: int):
    import numpy as np

    from selfsup.modalities import get_modality

    return get_modality(modality_name).toy_data(n, np.random.default_rng(seed))


def small_encoder(modality, spec: dict, method_cls) -> tuple[str, dict]:
    """The encoder a plan picks for `method_cls` on `modality` (training.plan.build_plan: the modality's default, else
    its preferred or first encoder of the protocol the method needs) and its options at the small size it declares:
    contract tests check what a method does with an encoder, which does not depend on the encoder's width or depth."""
    from selfsup.modalities import default_encoder_for, small_encoder_options
    from selfsup.training.plan import split_encoder_name

    name, options = split_encoder_name(default_encoder_for(modality, spec, method_cls.encoder_kind)
                                       or modality.default_encoder(spec))
    return name, {**options, **small_encoder_options(modality, name)}


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """A short SimCLR run on digits (without the per-epoch monitor, which no test of it reads), written as a run
    directory. Its thread count is fixed (and so recorded in config.yaml): with the adaptive default, other work on
    the machine could change it, and with it the floating-point sums that test_config_reproduces_run compares bit for
    bit."""
    import selfsup

    out = tmp_path_factory.mktemp("runs") / "digits-simclr"
    selfsup.train("digits", method="simclr", epochs=4, out=out, encoder_options={"widths": [32, 64, 128, 256]},
                  threads=1, monitor=False)
    return out
