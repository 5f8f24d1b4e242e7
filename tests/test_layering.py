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
    evaluation no model code; the core contracts nothing else of selfsup; the modalities independent of each other;
    the layers from the commands down to the contracts (pyproject.toml [tool.importlinter])."""
    pytest.importorskip("importlinter")
    proc = lint_imports(ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout and "7 kept" in proc.stdout


def contracts() -> list[dict]:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def test_every_module_has_a_layer_and_every_modality_is_in_every_contract():
    """A new top-level module or package of selfsup gets a place in the layers (else nothing stops it importing
    upwards), and a new modality joins the contracts that name the concrete modalities."""
    from selfsup.modalities import modalities

    layers = next(c for c in contracts() if c["type"] == "layers")["layers"]
    placed = {m.strip() for layer in layers for m in layer.split(":")}
    package = ROOT / "src" / "selfsup"
    modules = {f"selfsup.{p.stem}" for p in package.glob("*.py") if p.stem not in ("__init__", "__main__")}
    modules |= {f"selfsup.{p.parent.name}" for p in package.glob("*/__init__.py")}
    assert modules - placed == set() and placed - modules == set()
    concrete = {f"selfsup.modalities.{name}" for name in modalities.names()}
    assert concrete <= set(next(c for c in contracts() if c["type"] == "independence")["modules"])
    named = [c for c in contracts() if c.get("forbidden_modules") and any(
        m.startswith("selfsup.modalities.") for m in c["forbidden_modules"])]
    assert named and all(concrete <= set(c["forbidden_modules"]) for c in named)


@pytest.mark.parametrize("module,line,contract", [
    ("methods/simclr.py", "from ..training import loop  # noqa", "Methods know no modality"),
    ("training/loop.py", "from ..modalities.image import augment  # noqa", "Training and evaluation import no concrete"),
    ("evaluate.py", "from .modalities.graph import sources  # noqa", "Training and evaluation import no concrete"),
    ("run.py", "from .modalities.audio import frontend  # noqa", "Training and evaluation import no concrete"),
    ("evaluation/knn.py", "from ..methods import base  # noqa", "Evaluation (the probes"),
    ("modalities/audio/views.py", "from ..timeseries import modality  # noqa", "Modalities are independent"),
    ("run.py", "from .training import session  # noqa", "Layers:"),  # an import running back up the layers
    ("config.py", "from . import api  # noqa", "Layers:"),
])
def test_layering_contracts_catch_a_forbidden_import(tmp_path, module, line, contract):
    """Negative control: one forbidden import added to a copy of the package breaks the contract that forbids it."""
    import shutil

    pytest.importorskip("importlinter")
    shutil.copytree(ROOT / "src" / "selfsup", tmp_path / "src" / "selfsup")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "src" / "selfsup" / module
    target.write_text(target.read_text() + "\n" + line + "\n")
    proc = lint_imports(tmp_path)
    assert proc.returncode != 0 and "Broken contracts" in proc.stdout, proc.stdout[-3000:]
    assert contract in proc.stdout.split("Broken contracts", 1)[1], proc.stdout[-3000:]


def test_no_function_longer_than_80_lines_and_a_narrow_modality_interface():
    """Every function in src/ fits in 80 lines, and `Modality` declares at most 15 methods (what a modality
    presents, exports or records in a cache lives in the objects it declares: Presentation, ExportInputs,
    StorageRecord)."""
    import ast

    from selfsup.modalities import Modality

    long = []
    for path in (ROOT / "src" / "selfsup").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 80:
                long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert long == []
    methods = [name for name, value in vars(Modality).items() if callable(value) and not name.startswith("__")]
    assert len(methods) <= 15, methods


def recipe_name_tests(source: str) -> list[int]:
    """Lines where code compares a `.recipe` with a name (`recipe == "x"`, `recipe != "x"`, `recipe in ("x", ...)`)."""
    import ast

    def literal(node: ast.AST) -> bool:
        return isinstance(node, ast.Constant) or (isinstance(node, (ast.Tuple, ast.List, ast.Set))
                                                 and all(isinstance(e, ast.Constant) for e in node.elts))

    return [node.lineno for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Compare)
            and isinstance(node.left, ast.Attribute) and node.left.attr == "recipe"
            and any(literal(c) for c in node.comparators)]


def test_view_makers_choose_by_table_not_by_recipe_name():
    """A modality's view maker reads its recipe tables (RECIPES, LAYOUTS, SPECIAL_VIEWS, VIEW_MAKERS): adding a recipe
    adds an entry, never a branch. The check catches a branch on a recipe's name (negative control)."""
    found = [f"{path.relative_to(ROOT)}:{line}" for path in (ROOT / "src" / "selfsup" / "modalities").rglob("*.py")
             for line in recipe_name_tests(path.read_text())]
    assert found == []
    assert recipe_name_tests('if request.recipe == "tiles":\n    pass\n') == [1]
    assert recipe_name_tests('ok = req.recipe in ("a", "b")\n') == [1]
    assert recipe_name_tests('ok = req.recipe in TABLE\n') == []
