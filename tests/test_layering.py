"""No import cycles inside src/selfsup, read statically (deferred imports count too), and the layering contracts
of pyproject.toml hold (import-linter), with a negative control."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT.parent / "shared" / "tools" / "import_cycles.py"


@pytest.mark.skipif(not TOOL.exists(), reason="shared/tools/import_cycles.py is not beside this checkout")
def test_no_import_cycles():
    proc = subprocess.run([sys.executable, str(TOOL), "src", "selfsup"], cwd=ROOT, capture_output=True, text=True)
    assert proc.stdout.strip().splitlines()[-1] == "cycles: 0", proc.stdout


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
