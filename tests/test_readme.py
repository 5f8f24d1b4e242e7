"""README.md and the docs pages: short, no block typed twice, every figure block equal to its rendering from the
results (benchmarks/blocks.py), the methods table equal to the registry."""
import json
import re
import sys
from pathlib import Path

from selfsup.methods import methods

README = Path(__file__).resolve().parents[1] / "README.md"
sys.path.insert(0, str(README.parent / "benchmarks"))

import blocks  # noqa: E402


def test_readme_is_short_and_starts_with_the_two_commands():
    text = README.read_text()
    assert len(text.splitlines()) <= 220
    commands = re.findall(r"```bash\n(.*?)```", text[:text.index("\n## ")], re.S)
    assert len(commands) == 2, commands
    assert "pip install" in commands[0] and "selfsup train --data digits" in commands[0]
    assert commands[1].strip() == "bash scripts/test.sh"


def repeated_runs(lines: list[str], length: int = 5) -> list[int]:
    """Line numbers (1-based) where a run of `length` identical non-blank lines starts a second time."""
    seen, repeats = {}, []
    for i in range(len(lines) - length + 1):
        run = tuple(lines[i:i + length])
        if sum(bool(x.strip()) for x in run) < length or any(x.strip() in ("```", "|---|---|") for x in run):
            continue
        if run in seen and i >= seen[run] + length:
            repeats.append(i + 1)
        seen.setdefault(run, i)
    return repeats


def test_no_block_of_five_lines_appears_twice():
    assert repeated_runs(["a", "b", "c", "d", "e", "x", "a", "b", "c", "d", "e"]) == [7]  # negative control
    for path in blocks.documents():
        assert not repeated_runs(path.read_text().splitlines()), path


def test_every_figure_block_is_its_rendering():
    found = {}
    for path in blocks.documents():
        for name, content in blocks.blocks_in(path.read_text()).items():
            found[name] = path
            assert content == blocks.BLOCKS[name](), \
                f"{path.name}: block {name!r} is stale; regenerate it with `python benchmarks/blocks.py`"
    assert set(found) == set(blocks.BLOCKS), f"blocks no document holds: {set(blocks.BLOCKS) - set(found)}"


def test_a_changed_result_makes_its_block_stale():
    """Negative control: the check above compares with the JSON, so one changed figure no longer matches."""
    import clustering

    doc = json.loads((blocks.RESULTS / "clustering.json").read_text())
    changed = json.loads(json.dumps(doc))
    changed["datasets"][0]["rows"]["k-means on raw pixels"]["acc"] = 0.123
    page = next(p for p in blocks.documents() if "clustering table" in blocks.blocks_in(p.read_text()))
    assert clustering.clustering_table(changed) != blocks.blocks_in(page.read_text())["clustering table"]


def test_every_figure_in_the_prose_is_a_value_of_the_results_its_section_names():
    for page in blocks.FIGURE_PAGES:
        missing = blocks.unsourced_figures((blocks.ROOT / page).read_text())
        assert not missing, f"{page}: figures no result file holds: {missing}"


def test_a_changed_planted_or_unsourced_figure_is_caught():
    """Negative controls: the results changed under the prose, a figure typed into a section that cites other
    results, and a section that names no result file."""
    page = (blocks.ROOT / "docs/benchmarks.md").read_text()
    assert "(ratio 0.999," in page

    def scaled(doc):
        if isinstance(doc, dict):
            return {k: scaled(v) for k, v in doc.items()}
        if isinstance(doc, list):
            return [scaled(v) for v in doc]
        return doc * 1.013 if isinstance(doc, float | int) and not isinstance(doc, bool) else doc

    changed = blocks.unsourced_figures(page, lambda n: scaled(blocks.load_result(n)) if n == "loop_ab.json"
                                       else blocks.load_result(n))
    assert any(f.startswith("0.999 ") for f in changed), changed
    planted = page.replace("(ratio 0.999,", "(ratio 0.993,")
    assert [f for f in blocks.unsourced_figures(planted) if f.startswith("0.993 ")]
    unsourced = page + "\n**A new section** measured 0.917 in 12.5 s.\n"
    assert [f.split()[0] for f in blocks.unsourced_figures(unsourced)] == ["0.917", "12.5"]


def test_methods_table_lists_every_registered_method():
    table = blocks.BLOCKS["methods table"]()
    listed = re.findall(r"^\| `([a-z0-9_]+)` \|", table, re.M)
    assert sorted(listed) == sorted(methods.names()) and len(listed) >= 11


def test_the_project_speaks_of_the_product_not_of_its_history():
    """README, docs, sources, benchmark scripts and results name no work session or issue number (dates and commit
    hashes say when); the pattern is checked on a planted line first (negative control)."""
    pattern = re.compile(r"session [0-9]|issue [0-9]+", re.I)
    assert pattern.search("measured in Session 3 for issue 12")
    root = README.parent
    files = [README, *root.glob("docs/**/*.md"), *root.glob("src/**/*.py"), *root.glob("benchmarks/*.py"),
             *root.glob("benchmarks/results/*.json")]
    found = [f"{p.relative_to(root)}:{n}" for p in files
             for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1) if pattern.search(line)]
    assert not found, found


def test_rendered_sources_name_no_folder_of_the_machine_that_ran():
    line = blocks.with_source("| t |", {"command": "python benchmarks/x.py --data-dir /tmp/mlbench --seeds 0",
                                        "machine": {"cpu": "CPU", "cpus": 2, "threads": 1}})
    assert "`python benchmarks/x.py --data-dir DIR --seeds 0` on CPU (no AVX-512), 2 cores, 1 thread" in line
    for path in blocks.documents():
        assert not re.search(r"\s/(work|tmp|root|home)/", path.read_text()), path


def test_measured_gains_are_what_the_committed_results_give():
    """src/selfsup/measured_gains.json (read by `selfsup methods` and the methods table) equals what
    benchmarks/method_gains.py computes from benchmarks/results, for every registered method."""
    import method_gains

    from selfsup.cli import measured_gains

    assert measured_gains() == method_gains.gather()["methods"], \
        "measured_gains.json is stale; regenerate it with `python benchmarks/method_gains.py`"
    assert sorted(measured_gains()) == sorted(methods.names())


def test_a_changed_result_changes_the_measured_gains(monkeypatch):
    """Negative control: a method's trained accuracy lowered below its random encoder's turns its verdict (MoCo,
    measured on digits alone)."""
    import method_gains

    doc = json.loads((blocks.RESULTS / "digits_methods.json").read_text())
    moco = [e for e in doc["entries"] if e["method"] == "moco"]
    before = method_gains.gather()["methods"]["moco"]
    assert moco and before["verdict"] == "above" and len(before["rows"]) == 1
    for e in moco:
        e["knn"], e["linear"] = e["random_knn"] - 0.01, e["random_linear"] - 0.02
    real = method_gains._load
    monkeypatch.setattr(method_gains, "_load", lambda name: doc if name == "digits_methods" else real(name))
    changed = method_gains.gather()["methods"]["moco"]
    assert changed["verdict"] == "below" and changed["rows"][0]["gains"] == {"kNN": -1.0, "linear": -2.0}


def test_methods_command_names_the_methods_behind_their_untrained_encoder(capsys):
    from selfsup.cli import main, measured_gains

    assert main(["methods"]) == 0
    out = capsys.readouterr().out.splitlines()
    behind = next(line for line in out if line.startswith("Not above their untrained encoder"))
    for name, entry in measured_gains().items():
        assert (f" {name} ({entry['verdict']})" in behind) == (entry["verdict"] in ("below", "mixed"))
    assert main(["methods", "--json"]) == 0
    listed = {m["name"]: m["measured"] for m in json.loads(capsys.readouterr().out)}
    assert listed == measured_gains()
