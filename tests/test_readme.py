"""README's claims that code can check: the methods table lists every registered method, as the registry says."""
import re
from pathlib import Path

from selfsup.cli import methods_markdown
from selfsup.methods import methods

README = Path(__file__).resolve().parents[1] / "README.md"


def test_methods_table_is_the_registry():
    text = README.read_text()
    table = re.search(r"<!-- methods table:[^\n]*-->\n(.*?)\n<!-- end of methods table -->", text, re.S)
    assert table, "README lost its methods table markers"
    assert table.group(1) == methods_markdown(), "regenerate it with `selfsup methods --markdown`"
    listed = re.findall(r"^\| `([a-z0-9_]+)` \|", table.group(1), re.M)
    assert sorted(listed) == sorted(methods.names()) and len(listed) >= 11


def test_screen_tables_are_rendered_from_the_results():
    import sys

    sys.path.insert(0, str(README.parent / "benchmarks"))
    import json

    import fmnist_budget

    search = json.loads((fmnist_budget.RESULTS / "fmnist_budget_search.json").read_text())
    text = README.read_text()
    budget = json.loads((fmnist_budget.RESULTS / "fmnist_budget.json").read_text())
    for name, table in [("budget", fmnist_budget.budget_table(budget))] + [
            (name, fmnist_budget.screen_table(search, candidates)) for name, candidates in fmnist_budget.TABLES.items()]:
        block = re.search(rf"<!-- screen table {name}:[^\n]*-->\n(.*?)<!-- end of screen table {name} -->", text, re.S)
        assert block, f"README lost the markers of screen table {name!r}"
        assert block.group(1).rstrip("\n") == table, \
            f"regenerate it with `python benchmarks/fmnist_budget.py --table {name}` (budget: --budget-table)"


def test_main_job_figures_are_rendered_from_the_results():
    import sys

    sys.path.insert(0, str(README.parent / "benchmarks"))
    import json

    import digits_main_job

    result = json.loads((digits_main_job.RESULTS / "digits_main_job.json").read_text())
    block = re.search(r"<!-- main job figures:[^\n]*-->\n(.*?)\n<!-- end of main job figures -->", README.read_text(),
                      re.S)
    assert block, "README lost the markers of the main job's figures"
    assert block.group(1) == digits_main_job.readme_figures(result), \
        "regenerate them with `python benchmarks/digits_main_job.py --readme`"
