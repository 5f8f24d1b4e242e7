"""The figure blocks of README.md and docs/: each `<!-- NAME: command -->` ... `<!-- end of NAME -->` block is
rendered from benchmarks/results/*.json (or a registry) by one function here, never typed. The benchmark scripts
write them (`--readme`), the docs build renders them again (docs/hooks.py) and tests/test_readme.py checks that
every block in the repository equals its rendering.

The prose around the blocks is checked too (`unsourced_figures`): every figure in it must be a value of the result
files its section names.

    python benchmarks/blocks.py          # render every block of README.md and docs/ in place
"""
from __future__ import annotations

import importlib
import json
import re
import sys
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from _common import RESULTS  # noqa: E402


def _results(name: str) -> dict:
    return json.loads((RESULTS / f"{name}.json").read_text())


def _facts(doc, commands: list[str], machines: list[str]) -> None:
    """Collect the commands and machine records found anywhere in a result document (parts keep their own)."""
    if isinstance(doc, list):
        for item in doc:
            _facts(item, commands, machines)
        return
    if not isinstance(doc, dict):
        return
    command = doc.get("commands") or doc.get("command")  # a result merged from several processes lists them all
    for c in command if isinstance(command, list) else [command] if isinstance(command, str) else []:
        c = re.sub(r"(?<=\s)/\S+", "DIR", c)  # the folders of the machine that ran it say nothing to a reader
        if c not in commands:
            commands.append(c)
    machine = doc.get("machine")
    for m in machine if isinstance(machine, list) else [machine] if isinstance(machine, dict) else []:
        flags = ", ".join(m["cpu_flags"]) if m.get("cpu_flags") else m.get("torch_cpu_capability") or \
            ("AVX-512" if m.get("avx512") else "no AVX-512")
        threads = m.get("threads")
        text = f"{m.get('cpu', 'CPU not recorded')} ({flags}), {m.get('cpus')} cores, {threads} " \
               f"thread{'' if threads == 1 else 's'}"
        if text not in machines:
            machines.append(text)
    for key, value in doc.items():
        if key not in ("command", "machine"):
            _facts(value, commands, machines)


def with_source(table: str, *docs) -> str:
    """`table` with a line under it naming the commands that measured it and the machines they ran on, as the
    result files record them."""
    commands: list[str] = []
    machines: list[str] = []
    for doc in docs:
        _facts(doc, commands, machines)
    said = "; ".join(f"`{c}`" for c in commands) or "the command named above"
    return f"{table}\n\n<small>Measured by {said} on {'; '.join(machines) or 'a machine not recorded'}.</small>"


def _main_job() -> str:
    import digits_main_job

    return digits_main_job.readme_figures(_results("digits_main_job"))


def _table(module: str, render: str, *docs: Any, args: tuple | None = None) -> str:
    """benchmarks/MODULE.RENDER applied to `args` (default: the result documents `docs`), with the line naming the
    commands and machines `docs` record."""
    return with_source(getattr(importlib.import_module(module), render)(*(docs if args is None else args)), *docs)


def _screen(name: str) -> str:
    import fmnist_budget

    search = _results("fmnist_budget_search")
    return _table("fmnist_budget", "screen_table", _search_rows("candidates", fmnist_budget.TABLES[name]),
                  args=(search, fmnist_budget.TABLES[name]))


def _search_rows(part: str, names: tuple[str, ...] | None = None) -> dict:
    """The rows of the search's record that a table shows (`part`: candidates or final_round; `names`: those of them,
    default all) with the machine the search names, so the table's source line lists its own rows' machines only
    (a screen run later records its machine in its row)."""
    search = _results("fmnist_budget_search")
    rows = search.get(part, {})
    return {"machine": search["machine"], part: {n: r for n, r in rows.items() if names is None or n in names}}


def _speed() -> str:
    docs = _results("throughput"), _results("throughput_avx2")
    return _table("throughput", "speed_table", *docs, args=(list(docs),))


def _tabular() -> str:
    import tabular

    return tabular.markdown(_results("tabular"))


def _selection_summary() -> str:
    import selection

    result = _results("selection")
    # the search's own criterion; every criterion on every benchmark is the selection table's (docs/benchmarks.md)
    return f"{selection.modality_summary(result)} {selection.summary(result, None)}"


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
    "speed table": _speed,
    "time to accuracy table": lambda: _table("time_to_accuracy", "markdown", _results("time_to_accuracy")),
    "gpu table": lambda: _table("gpu_check", "gpu_table", _results("gpu_check")),
    "attention table": lambda: _table("attention", "markdown", _results("attention")),
    "screen table budget": lambda: _table("fmnist_budget", "budget_table", _results("fmnist_budget")),
    "screen table lightly": lambda: _screen("lightly"),
    "screen table distillation": lambda: _screen("distillation"),
    "screen table pretext": lambda: _screen("pretext"),
    "final round table": lambda: _table("fmnist_budget", "final_round_table", _search_rows("final_round"),
                                        args=(_results("fmnist_budget_search"),)),
    "clustering table": lambda: _table("clustering", "clustering_table", _results("clustering")),
    "tabular table": _tabular,
    "tabular recipes": lambda: _table("tabular_recipes", "markdown", _results("tabular_recipes")),
    "tabular epochs": lambda: _table("tabular_recipes", "epochs_markdown", _results("tabular_epochs")),
    "mutag table": lambda: _table("graphs", "classification_table", _results("graphs")["mutag"]),
    "mutag walks table": lambda: _table("graphs", "walks_table", _results("graphs")["mutag_walk_steps"]),
    "motifs table": lambda: _table("graphs", "classification_table", _results("graphs")["motifs"],
                                   args=(_results("graphs")["motifs"], "motifs")),
    "motifs constant table": lambda: _table("graphs", "classification_table",
                                            _results("graphs")["motifs_constant_inputs"],
                                            args=(_results("graphs")["motifs_constant_inputs"],
                                                  "motifs, constant inputs")),
    "graph nodes table": lambda: _table("graphs", "nodes_table", _results("graphs")["nodes"]),
    "text scratch table": lambda: _table("text", "scratch_table", _results("text")["scratch"],
                                         args=(_results("text"),)),
    "text adaptation table": lambda: _table("text", "adaptation_table", _results("text")["adaptation"],
                                            args=(_results("text"),)),
    "points table": lambda: _table("digits_methods", "markdown", _results("points")),
    "points whole table": lambda: _table("digits_methods", "markdown", _results("points_whole")),
    "video table": lambda: _table("video", "markdown", _results("video")),
    "video validation table": lambda: _table("digits_methods", "validation_markdown", _results("video_validation")),
    "points screen table": lambda: _table("points_screen", "markdown", _results("points_screen")),
    "points scan screen table": lambda: _table("points_screen", "markdown", _results("points_scan_screen")),
    "audio table": lambda: _table("audio", "audio_table", _results("audio")),
    "ucr table": lambda: _table("ucr", "comparison_table", _results("ucr"), _results("ucr_width64")),
    "token encoders table": lambda: _table("token_encoders", "fmnist_table", _results("token_encoders")["fmnist"]),
    "token encoders digits table": lambda: _table("token_encoders", "digits_table",
                                                  _results("token_encoders")["digits"]),
    "selection table": lambda: _table("selection", "markdown", _results("selection")),
    "selection summary": _selection_summary,
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


#: a figure in prose: a number with a decimal point, or a whole number with a unit of measure (or %, or x for ratios)
_UNIT = r"(?:\s?(?:img/s|images/s|GFLOP/s|MFLOP|ms|s|GB|GiB|MB|KB|points?)|x|%)"
FIGURE = re.compile(r"(?<![\w.,-])(?<!>= )(?<!<= )(?:\d+\.\d+(?![\w.]*\d|[eE][-+]?\d)|\d{1,3}(?:,\d{3})+(?="
                    + _UNIT + r"\b)|\d+(?=" + _UNIT + r"(?![\w/])))")
_RESULT_NAME = re.compile(r"\b([\w-]+\.jsonl?)\b")


def _numbers(doc) -> list[float]:
    """Every number a JSON document holds (booleans are not numbers)."""
    if isinstance(doc, dict):
        doc = list(doc.values())
    if isinstance(doc, list):
        return [v for item in doc for v in _numbers(item)]
    return [float(doc)] if isinstance(doc, (int, float)) and not isinstance(doc, bool) else []


def load_result(name: str):
    """A result file of benchmarks/results/ by name (`x.json`, or `x.jsonl`: a list of its lines)."""
    text = (RESULTS / name).read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()] if name.endswith(".jsonl") \
        else json.loads(text)


def _prose(section: str) -> str:
    """A section without what is checked elsewhere or is no figure: rendered blocks, comments, code."""
    for name in BLOCKS:
        section = pattern(name).sub("", section)
    section = re.sub(r"<!--.*?-->", "", section, flags=re.S)
    section = re.sub(r"```.*?```", "", section, flags=re.S)
    return re.sub(r"`[^`\n]*`", "``", section)


def sections(markdown: str) -> list[str]:
    """The sections of a page: a heading or a paragraph that opens in bold starts one."""
    parts: list[list[str]] = [[]]
    for line in markdown.splitlines():
        if line.startswith(("#", "**")) and parts[-1]:
            parts.append([])
        parts[-1].append(line)
    return ["\n".join(p) for p in parts]


def unsourced_figures(markdown: str, load: Callable[[str], object] = load_result) -> list[str]:
    """The figures of `markdown`'s prose (outside rendered blocks and code) that no result file its section names
    holds: a figure shown with d decimals must be within half a unit of its last place of a value of one of them
    (or of 100 times one: percentages and points). Settings, targets and versions are not figures: code spans
    (`0.996`), bounds (>= 3.10) and dotted versions (1.6.0) are skipped."""
    missing = []
    for section in sections(markdown):
        names = sorted({n for n in _RESULT_NAME.findall(section) if (RESULTS / n).exists()})
        values = [v for n in names for v in _numbers(load(n))]
        for m in FIGURE.finditer(_prose(section)):
            token = m.group(0)
            shown = float(token.replace(",", ""))
            tolerance = 0.5 * 10 ** -len(token.partition(".")[2]) + 1e-9
            if not any(abs(v - shown) <= tolerance or abs(100 * v - shown) <= tolerance for v in values):
                missing.append(f"{token} in the section opening {section.strip()[:60]!r} "
                               f"(its result files: {', '.join(names) or 'none named'})")
    return missing


#: the pages whose prose `unsourced_figures` checks: the README and the benchmarks page
FIGURE_PAGES = ("README.md", "docs/benchmarks.md")


if __name__ == "__main__":
    for path in write():
        print(f"rendered {path.relative_to(ROOT)}")
