"""The figure blocks of README.md and docs/: each `<!-- NAME: command -->` ... `<!-- end of NAME -->` block is
rendered from benchmarks/results/*.json (or a registry) by one function here, never typed. The benchmark scripts
write them (`--readme`), the docs build renders them again (docs/hooks.py) and tests/test_readme.py checks that
every block in the repository equals its rendering.

    python benchmarks/blocks.py          # render every block of README.md and docs/ in place
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from _common import RESULTS  # noqa: E402


def _results(name: str) -> dict:
    return json.loads((RESULTS / f"{name}.json").read_text())


def _main_job() -> str:
    import digits_main_job

    return digits_main_job.readme_figures(_results("digits_main_job"))


def _budget() -> str:
    import fmnist_budget

    return fmnist_budget.budget_table(_results("fmnist_budget"))


def _lightly() -> str:
    import fmnist_budget

    return fmnist_budget.screen_table(_results("fmnist_budget_search"), fmnist_budget.TABLES["lightly"])


def _clustering() -> str:
    import clustering

    return clustering.clustering_table(_results("clustering"))


def _tabular() -> str:
    import tabular

    return tabular.markdown(_results("tabular"))


def _tabular_recipes() -> str:
    import tabular_recipes

    return tabular_recipes.markdown(_results("tabular_recipes"))


def _methods() -> str:
    from selfsup.cli import methods_markdown

    return methods_markdown()


def _method_count() -> str:
    from selfsup.methods import methods

    return (f"{len(methods.names())} methods, each one file with its paper's pseudo-code and every departure from its "
            "defaults in its docstring:")


#: block name -> its renderer
BLOCKS: dict[str, Callable[[], str]] = {
    "main job figures": _main_job,
    "screen table budget": _budget,
    "screen table lightly": _lightly,
    "clustering table": _clustering,
    "tabular table": _tabular,
    "tabular recipes": _tabular_recipes,
    "methods table": _methods,
    "method count": _method_count,
}


def pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- {re.escape(name)}:[^\n]*-->\n)(.*?)(<!-- end of {re.escape(name)} -->)", re.S)


def documents() -> list[Path]:
    """The files that may hold blocks: README.md and the docs pages."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def render_all(markdown: str, renderers: dict[str, Callable[[], str]] | None = None) -> str:
    """`markdown` with every block it holds rendered again."""
    for name, render in (renderers or BLOCKS).items():
        regex = pattern(name)
        if regex.search(markdown):
            text = render()
            markdown = regex.sub(lambda m: m.group(1) + text + "\n" + m.group(3), markdown)
    return markdown


def blocks_in(markdown: str) -> dict[str, str]:
    """{name: content} of the known blocks `markdown` holds (content without its trailing newline)."""
    return {name: m.group(2).rstrip("\n") for name in BLOCKS for m in pattern(name).finditer(markdown)}


def write(name: str | None = None) -> list[Path]:
    """Render block `name` (every block when None) in place in every document that holds it; the files changed."""
    renderers = BLOCKS if name is None else {name: BLOCKS[name]}
    changed = []
    for path in documents():
        text = path.read_text()
        new = render_all(text, renderers)
        if new != text:
            path.write_text(new)
            changed.append(path)
    return changed


if __name__ == "__main__":
    for path in write():
        print(f"rendered {path.relative_to(ROOT)}")
