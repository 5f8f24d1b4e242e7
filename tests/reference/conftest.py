"""Reference checks: selfsup's losses, stateful parts and views against published implementations.

They need the packages of .venv-reference (scripts/reference_env.sh): torch 2.14.1, torchvision 0.29.1 and
LightlySSL 1.6.0. In any other environment the whole folder is skipped, unless SELFSUP_REFERENCE_REQUIRED=1
(scripts/test.sh sets it), which turns a missing reference into a failure instead of a silent skip.
"""
import importlib.util
import os

import pytest
import torch

torch.set_num_threads(2)

REQUIRED = ("lightly", "torchvision")
MISSING = [m for m in REQUIRED if importlib.util.find_spec(m) is None]


def pytest_collection_modifyitems(config, items):
    if not MISSING:
        return
    if os.environ.get("SELFSUP_REFERENCE_REQUIRED") == "1":
        raise pytest.UsageError(f"reference packages missing: {', '.join(MISSING)} (run scripts/reference_env.sh)")
    skip = pytest.mark.skip(reason=f"reference packages missing: {', '.join(MISSING)} (scripts/reference_env.sh)")
    for item in items:
        if "tests/reference" in str(item.fspath):
            item.add_marker(skip)


def assert_close(ours: torch.Tensor, theirs: torch.Tensor, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    """Values equal at rtol 1e-5 in fp32 (the issue's tolerance), with a small absolute floor for values near 0."""
    torch.testing.assert_close(ours.detach().float(), theirs.detach().float(), rtol=rtol, atol=atol)


def value_and_grad(fn, *inputs: torch.Tensor):
    """fn(*inputs) and the gradients of its value with respect to every input (fresh leaf copies)."""
    leaves = [x.detach().clone().requires_grad_(True) for x in inputs]
    out = fn(*leaves)
    grads = torch.autograd.grad(out, leaves, allow_unused=True)
    return out.detach(), [g if g is not None else torch.zeros_like(x) for g, x in zip(grads, leaves)]
