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

