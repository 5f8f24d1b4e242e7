"""The examples of README.md and the docs pages work: every `selfsup` command in their shell blocks parses with the
real command line (options, sub-commands and choices as they are now); every Python block calls selfsup's API by
names and keywords it has, and the docs pages' Python blocks run (README's tour trains on the reader's own folder);
every relative link points at a file of the repository."""
import ast
import inspect
import re
import shlex
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from selfsup.cli import build_parser
from selfsup.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def code_blocks(markdown: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", markdown, re.S)


def selfsup_commands(block: str) -> list[list[str]]:
    """The argument lists given to selfsup in a shell block: `selfsup ...`, `python -m selfsup ...` or
    `torchrun ... -m selfsup ...`, continuation lines joined, comments dropped."""
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words[:1] == ["selfsup"]:
            commands.append(words[1:])
        elif "-m" in words and words[words.index("-m") + 1:words.index("-m") + 2] == ["selfsup"]:
            commands.append(words[words.index("-m") + 2:])
    return commands


def parse_error(args: list[str]) -> str | None:
    """argparse's complaint about `args`, None when they parse."""
    try:
        build_parser().parse_args(args)
    except SystemExit as exit_:
        return f"exit {exit_.code}"
    return None


def documented_commands() -> list[tuple[str, list[str]]]:
    return [(path.relative_to(ROOT).as_posix(), args) for path in PAGES
            for block in code_blocks(path.read_text(), "bash") for args in selfsup_commands(block)]


def test_every_documented_command_parses(capsys):
    commands = documented_commands()
    assert len(commands) >= 30 and {args[0] for _, args in commands} >= {"train", "eval", "embed", "export"}
    failures = [(page, " ".join(args)) for page, args in commands if parse_error(args)]
    capsys.readouterr()
    assert not failures, failures


def test_a_stale_option_fails_the_check(capsys):
    """Negative control: an option the command line no longer has, and a choice it does not offer."""
    block = "selfsup train --data digits --epochs 3 \\\n    --no-such-option 1   # a comment\n" \
            "python -m selfsup eval runs/x --precision fp8\n"
    commands = selfsup_commands(block)
    assert commands == [["train", "--data", "digits", "--epochs", "3", "--no-such-option", "1"],
                        ["eval", "runs/x", "--precision", "fp8"]]
    assert parse_error(commands[0]) and parse_error(commands[1])
    assert parse_error(["train", "--data", "digits", "--epochs", "3"]) is None
    capsys.readouterr()


#: the functions of selfsup's API whose **options are the fields of a configuration
KEYWORD_OPTIONS = {"train": TrainConfig}


def api_misuse(block: str) -> list[str]:
    """Calls `selfsup.NAME(...)` in a Python block whose NAME selfsup lacks or whose arguments its signature refuses."""
    import selfsup

    problems = []
    for node in ast.walk(ast.parse(block)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "selfsup":
            name = node.func.attr
            if name not in selfsup.__all__:
                problems.append(f"selfsup.{name}: no such name")
                continue
            signature = inspect.signature(getattr(selfsup, name))
            try:
                signature.bind(*node.args, **{k.arg: None for k in node.keywords})
            except TypeError as error:
                problems.append(f"selfsup.{name}: {error}")
            options = {f.name for f in fields(KEYWORD_OPTIONS[name])} if name in KEYWORD_OPTIONS else None
            problems += [f"selfsup.{name}: unknown option {k.arg!r}" for k in node.keywords
                         if options is not None and k.arg not in signature.parameters and k.arg not in options]
    return problems


def test_python_examples_call_the_api_as_it_is():
    assert api_misuse('import selfsup\nselfsup.train("digits", epoch=3)\nselfsup.trian("digits")') == \
        ["selfsup.train: unknown option 'epoch'", "selfsup.trian: no such name"]  # control
    blocks = [(p.name, b) for p in PAGES for b in code_blocks(p.read_text(), "python")]
    assert any(name == "README.md" for name, _ in blocks)
    problems = [(name, problem) for name, block in blocks for problem in api_misuse(block)]
    assert not problems, problems


@pytest.mark.parametrize("page", [p for p in PAGES[1:] if code_blocks(p.read_text(), "python")],
                         ids=lambda p: p.relative_to(ROOT).as_posix())
def test_python_examples_run(page, tmp_path):
    for block in code_blocks(page.read_text(), "python"):
        done = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, f"{page.name}:\n{block}\n{done.stderr[-2000:]}"


def broken_links(page: Path, markdown: str) -> list[str]:
    """Relative link targets of `markdown` (read as `page`) that are no file of the repository."""
    targets = re.findall(r"\]\(([^)\s]+)\)", markdown)
    local = [t.split("#")[0] for t in targets if not re.match(r"[a-z]+:", t) and not t.startswith("#")]
    return [t for t in local if t and not (page.parent / t).exists()]


def test_relative_links_point_at_files():
    assert broken_links(ROOT / "README.md", "[a](docs/nowhere.md) [b](docs/index.md) [c](https://x.org)") == \
        ["docs/nowhere.md"]  # negative control
    broken = {p.relative_to(ROOT).as_posix(): b for p in PAGES if (b := broken_links(p, p.read_text()))}
    assert not broken, broken
