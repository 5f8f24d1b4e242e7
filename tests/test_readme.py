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
