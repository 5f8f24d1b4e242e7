"""docs/architecture.md matches the code: every file and every dotted name of selfsup it names exists."""
import importlib
import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("selfsup", "selfsup.methods", "selfsup.training", "selfsup.evaluation", "selfsup.modalities")
NOT_CODE = re.compile(r".*\.(yaml|json|jsonl)$|^(torch|inspect|resolved)\.")


def missing_files(names: set[str]) -> list[str]:
    """File names that are in none of the places the page speaks of (the package, a modality's folder, the
    repository, the folder beside it); NAME stands for any."""
    places = [ROOT / "src" / "selfsup", ROOT, ROOT.parent, *sorted((ROOT / "src/selfsup/modalities").glob("*/"))]
    return sorted(n for n in names if "NAME" not in n and not any((p / n).exists() for p in places))


def find(name: str):
    try:
        return importlib.util.find_spec(name)
    except ModuleNotFoundError:  # a parent that is a module, not a package
        return None


def resolves(dotted: str) -> bool:
    """True when `dotted` (module[.attribute...], relative to one of selfsup's packages) names something that
    exists."""
    head, *rest = dotted.split(".")
    for package in PACKAGES:
        if find(f"{package}.{head}") is None:
            continue
        obj = importlib.import_module(f"{package}.{head}")
        for part in rest:
            if getattr(obj, part, None) is not None:
                obj = getattr(obj, part)
            elif find(f"{obj.__name__}.{part}") is not None:
                obj = importlib.import_module(f"{obj.__name__}.{part}")
            else:
                return False
        return True
    return False


def named(text: str) -> tuple[set[str], set[str]]:
    spans = set(re.findall(r"`([^`\s]+)`", text))
    files = {s for s in spans if s.endswith(".py")}
    dotted = {s for s in spans if re.fullmatch(r"[a-z_]+(\.[A-Za-z_0-9]+)+", s) and s not in files
              and not NOT_CODE.match(s)}
    return files, dotted


def test_every_name_on_the_architecture_page_exists():
    files, dotted = named((ROOT / "docs/architecture.md").read_text())
    assert len(files) >= 15 and len(dotted) >= 10
    assert not missing_files(files), missing_files(files)
    assert not [d for d in dotted if not resolves(d)], [d for d in dotted if not resolves(d)]


def test_a_renamed_module_or_function_is_caught():
    """Negative control: names that do not exist fail."""
    files, dotted = named("`training/looop.py`, `search.py`, `loading.load_datasets`, `views.Views`, `config.yaml`")
    assert missing_files(files) == ["training/looop.py"]
    assert [d for d in sorted(dotted) if not resolves(d)] == ["loading.load_datasets"]
