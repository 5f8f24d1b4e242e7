"""benchmarks/_common.result_of: the result document read again before each write, one data set a file."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _common import result_of  # noqa: E402


def test_a_result_file_holds_runs_on_one_data_set(tmp_path):
    path = tmp_path / "points.json"
    assert result_of(path, "shapes?scan=1") == {}
    path.write_text(json.dumps({"data": "shapes?scan=1", "entries": [{"seed": 0}]}))
    assert result_of(path, "shapes?scan=1")["entries"] == [{"seed": 0}]
    with pytest.raises(SystemExit, match=r"points.json holds runs on shapes\?scan=1, not shapes: give another --name"):
        result_of(path, "shapes")
