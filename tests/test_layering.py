"""No import cycles inside src/selfsup, read statically (deferred imports count too)."""
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
