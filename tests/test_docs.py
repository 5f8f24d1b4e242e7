"""The documentation site builds with MkDocs in strict mode (a broken link, a missing page or an API name that no
longer exists fails it), with the command-line and API references generated, the home page equal to README.md, and
every figure block rendered from the results."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("mkdocs", reason="the docs extra (pip install -e '.[docs]')")
pytest.importorskip("mkdocstrings")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


def text_of(page: Path) -> str:
    return re.sub(r"<[^>]+>", " ", page.read_text())


def test_every_page_of_the_nav_is_built(site):
    import yaml

    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text().replace("!!python", ""))["nav"]

    def pages(entries):
        for entry in entries:
            value = next(iter(entry.values()))
            yield from pages(value) if isinstance(value, list) else [value]

    for page in pages(nav):
        built = site / ("index.html" if page == "index.md" else page.replace(".md", "/index.html"))
        assert built.exists(), page


def test_the_references_are_generated(site):
    cli = text_of(site / "reference" / "cli" / "index.html")
    for command in ("train", "embed", "eval", "export", "report", "cluster", "prepare", "compare"):
        assert f"selfsup {command}" in cli
    assert "--minutes" in cli and "--resume" in cli
    api = text_of(site / "reference" / "api" / "index.html")
    for name in ("train", "SelfSupervisedEmbedder", "knn_accuracy", "linear_probe", "TokenEncoder"):
        assert name in api, name
    assert "Train an encoder on" in " ".join(api.split())  # the docstrings themselves, not only the names


def test_the_home_page_is_the_readme(site):
    home = text_of(site / "index.html")
    assert "Run the main job" in home and "bash scripts/test.sh" in home
    assert 'href="guides/images/"' in (site / "index.html").read_text()  # README's docs/ links made relative


@pytest.mark.skipif(shutil.which("chromedriver") is None, reason="needs chromium-driver")
def test_pages_render_in_a_browser(site):
    sys.path.insert(0, str(ROOT / "scripts"))
    from report_screenshot import headless_chromium

    driver = headless_chromium(1100, 900)
    try:
        for page, heading in (("index.html", "selfsup"), ("guides/images/index.html", "Images")):
            driver.get((site / page).resolve().as_uri())
            assert heading in driver.find_element("tag name", "h1").text
            assert driver.find_element("css selector", "nav").is_displayed()
    finally:
        driver.quit()


@pytest.mark.skipif(shutil.which("chromedriver") is None, reason="needs chromium-driver")
def test_the_report_picture_reaches_the_clusters_section(tmp_path):
    """scripts/report_screenshot.py captures a main-job report down to its Clusters section; a report without one is
    refused (negative control)."""
    from PIL import Image

    sys.path.insert(0, str(ROOT / "scripts"))
    import report_screenshot
    from selfsup.cli import main

    tiny = ["--epochs", "1", "--threads", "1", "--encoder-option", "widths=[8,8,8,8]", "--quiet"]
    assert main(["train", "--data", "digits", "--out", str(tmp_path / "run"), "--cluster", "10", *tiny]) == 0
    height = report_screenshot.screenshot(tmp_path / "run" / "report.html", tmp_path / "r.png", 1100, 6000)
    assert height > 900 and Image.open(tmp_path / "r.png").size[1] >= height - 200
    shutil.copytree(tmp_path / "run", tmp_path / "plain")  # the same run without its clusters
    for name in ("clusters.json", "clusters.csv", "report.html"):
        (tmp_path / "plain" / name).unlink()
    assert main(["report", str(tmp_path / "plain")]) == 0
    with pytest.raises(SystemExit, match="no Clusters section"):
        report_screenshot.screenshot(tmp_path / "plain" / "report.html", tmp_path / "p.png", 1100, 6000)
