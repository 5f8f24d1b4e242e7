"""Shared fixtures: a quiet 2-thread torch and small trained runs reused across tests."""
import os
import subprocess
import sys

import pytest
import torch

torch.set_num_threads(2)
FASHION_MNIST = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"


def run_cli(*args, cwd=None, timeout=600):
    """Run `python -m selfsup ARGS` in a subprocess; returns CompletedProcess with text output."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "selfsup", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=env)


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """A short SimCLR run on digits, written as a run directory. Its thread count is fixed (and so recorded in
    config.yaml): with the adaptive default, other work on the machine could change it, and with it the floating-
    point sums that test_config_reproduces_run compares bit for bit."""
    import selfsup

    out = tmp_path_factory.mktemp("runs") / "digits-simclr"
    selfsup.train("digits", method="simclr", epochs=4, out=out, encoder_options={"widths": [32, 64, 128, 256]},
                  threads=2)
    return out
