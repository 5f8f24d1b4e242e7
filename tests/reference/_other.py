"""Loading the non-image references of tests/reference/test_other_*.py.

`require` imports a reference module, or skips the test where it is missing (a failure under
SELFSUP_REFERENCE_REQUIRED=1, as the folder's conftest does for lightly). `pygcl` loads PyGCL's loss and sampler
modules without its package __init__, which imports DGL, torch_sparse and an augmentation module written for an older
PyG; the losses and the samplers need none of them (torch_scatter is imported by the sampler module but called only
by `CrossScaleSampler(use_gpu=True)`, which the tests do not use: a stand-in, present only while that module is
imported, refuses to be called).
"""
import importlib
import importlib.util
import os
import sys
import types

import pytest


def require(name: str):
    try:
        return importlib.import_module(name)
    except ImportError as error:
        if os.environ.get("SELFSUP_REFERENCE_REQUIRED") == "1":
            raise
        pytest.skip(f"reference {name} missing ({error}; scripts/reference_env.sh)")


def _refuse(*args, **kwargs):
    raise RuntimeError("torch_scatter is not installed: the reference checks use CrossScaleSampler(use_gpu=False)")


def pygcl():
    """(GCL.losses, GCL.models) of PyGCL 0.1.2."""
    if "GCL.models" not in sys.modules:
        spec = importlib.util.find_spec("GCL")
        if spec is None:
            require("GCL")  # skips or fails with the reason
        package = types.ModuleType("GCL")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules.setdefault("GCL", package)
        stand_in = importlib.util.find_spec("torch_scatter") is None
        if stand_in:  # only while the sampler module binds its name: later imports must not see a torch_scatter
            sys.modules["torch_scatter"] = types.SimpleNamespace(scatter=_refuse)
        try:
            importlib.import_module("GCL.models")
        finally:
            if stand_in:
                del sys.modules["torch_scatter"]
    return importlib.import_module("GCL.losses"), importlib.import_module("GCL.models")
