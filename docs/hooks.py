"""MkDocs hooks: the pages that are generated, never typed, when the site is built.

- `index.md` is README.md, its links to `docs/...` made relative to the docs folder (one text for GitHub and the site);
- the command-line reference is generated from `selfsup.cli.build_parser()`, every sub-command's usage and options;
- every figure block of a page (`<!-- NAME: command -->` ... `<!-- end of NAME -->`) is rendered again from
  benchmarks/results/*.json by the renderer benchmarks/blocks.py names for it, so a built page cannot show a figure
  its JSON does not hold.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_as_home() -> str:
    text = (ROOT / "README.md").read_text()
    return re.sub(r"\]\(docs/", "](", text)


def option_line(action: argparse.Action) -> str:
    names = ", ".join(f"`{s}`" for s in action.option_strings) or f"`{action.dest}`"
    if action.metavar or (action.option_strings and action.nargs != 0):
        names += f" {action.metavar or action.dest.upper()}" if action.option_strings else ""
    text = (action.help or "").replace("%(default)s", str(action.default)).replace("|", "\\|")
    choices = f" (one of: {', '.join(map(str, action.choices))})" if action.choices and action.option_strings else ""
    return f"| {names} | {text}{choices} |"


def cli_reference() -> str:
    """Markdown for `selfsup` and each sub-command: description, usage and a table of its arguments."""
    from selfsup.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help for a in sub._choices_actions}
    parts = [f"```text\n{parser.format_usage().strip()}\n```\n"]
    for name, command in sub.choices.items():
        rows = [option_line(a) for a in command._actions if not isinstance(a, argparse._HelpAction)]
        parts.append(f"## selfsup {name}\n\n{helps.get(name) or ''}\n\n```text\n{command.format_usage().strip()}\n```\n")
        if rows:
            parts.append("| argument | meaning |\n|---|---|\n" + "\n".join(rows) + "\n")
    return "\n".join(parts)


def render_blocks(markdown: str) -> str:
    """Every figure block rendered again from the results (benchmarks/blocks.py)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import blocks

    return blocks.render_all(markdown)


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ANN001 -- MkDocs' hook signature
    if page.file.src_uri == "index.md":
        markdown = readme_as_home()
    if page.file.src_uri == "reference/cli.md":
        markdown = markdown + "\n" + cli_reference()
    return render_blocks(markdown)
