"""No import cycles inside src/selfsup, read statically (deferred imports count too; grimp, import-linter's graph),
and the layering contracts of pyproject.toml hold (import-linter), each with a negative control."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CYCLES = """
import grimp, networkx
graph = grimp.build_graph("selfsup", cache_dir=None)  # every import, deferred (inside functions) ones too
edges = networkx.DiGraph([(m, t) for m in graph.modules for t in graph.find_modules_directly_imported_by(m)])
for package in ("selfsup.methods", "selfsup.modalities"):  # they import every module in them (pkgutil), unseen
    edges.add_edges_from((package, child) for child in graph.find_children(package))
for cycle in sorted(sorted(c) for c in networkx.strongly_connected_components(edges) if len(c) > 1):
    print("cycle:", " ".join(cycle))
"""


def import_cycles(root: Path) -> list[str]:
    """The import cycles among the modules of the package under `root`/src, read statically."""
    env = {**__import__("os").environ, "PYTHONPATH": str(root / "src")}
    proc = subprocess.run([sys.executable, "-c", CYCLES], cwd=root, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.splitlines()


def test_no_import_cycles():
    pytest.importorskip("grimp")
    assert import_cycles(ROOT) == []


@pytest.mark.parametrize("module,line,cycle", [
    ("errors.py", "from . import remote", "selfsup.errors selfsup.remote"),
    # through a package that imports its modules by discovery (no import statement to read)
    ("methods/simclr.py", "from .. import compatibility",
     "selfsup.compatibility selfsup.methods selfsup.methods.simclr"),
])
def test_a_deferred_import_that_closes_a_cycle_is_caught(tmp_path, module, line, cycle):
    """Negative controls: a deferred import (inside a function) that closes a cycle is reported."""
    import shutil

    pytest.importorskip("grimp")
    shutil.copytree(ROOT / "src" / "selfsup", tmp_path / "src" / "selfsup")
    target = tmp_path / "src" / "selfsup" / module
    target.write_text(target.read_text() + f"\n\ndef _late():\n    {line}  # noqa\n")
    assert any(c.startswith("cycle: ") and set(cycle.split()) <= set(c.split()[1:]) for c in import_cycles(tmp_path))


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """`lint-imports` with the contracts of `root`/pyproject.toml on the package under `root`/src."""
    env = {**__import__("os").environ, "PYTHONPATH": str(root / "src")}
    return subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                           "lint_imports_command()"], cwd=root, capture_output=True, text=True, env=env)


def test_layering_contracts_hold():
    """methods import no modality and no training internals; training and evaluation no concrete modality;
    evaluation no model code; the core contracts nothing else of selfsup (pyproject.toml [tool.importlinter])."""
    pytest.importorskip("importlinter")
    proc = lint_imports(ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout and "5 kept" in proc.stdout


@pytest.mark.parametrize("module,line", [
    ("methods/simclr.py", "from ..training import loop  # noqa"),
    ("training/loop.py", "from ..modalities.image import augment  # noqa"),
    ("evaluate.py", "from .modalities.graph import sources  # noqa"),
    ("run.py", "from .modalities.audio import frontend  # noqa"),
    ("evaluation/knn.py", "from ..methods import base  # noqa"),
])
def test_layering_contracts_catch_a_forbidden_import(tmp_path, module, line):
    """Negative control: one forbidden import added to a copy of the package breaks a contract."""
    import shutil

    pytest.importorskip("importlinter")
    shutil.copytree(ROOT / "src" / "selfsup", tmp_path / "src" / "selfsup")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "src" / "selfsup" / module
    target.write_text(target.read_text() + "\n" + line + "\n")
    proc = lint_imports(tmp_path)
    assert proc.returncode != 0 and "1 broken" in proc.stdout, proc.stdout[-3000:]
