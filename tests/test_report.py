"""report.html opens in headless Chromium with every image loaded; --select rankme keeps the best-RankMe encoder."""
import json
import shutil

import numpy as np
import pytest

import selfsup
from selfsup.evaluation import rankme
from selfsup.report import build_report, rankme_knn_correlation

SMALL = {"widths": [16, 32, 32, 32]}


def open_in_chromium(path, screenshot):
    """Load a page in headless Chromium; return (images that failed to load, number of tables, text)."""
    webdriver = pytest.importorskip("selenium.webdriver")
    if not shutil.which("chromedriver") or not (shutil.which("chromium") or shutil.which("chromium-browser")):
        pytest.skip("chromium / chromedriver not installed (scripts/test.sh installs them)")
    opts = webdriver.ChromeOptions()
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
                 "--window-size=1280,2400"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=shutil.which("chromedriver")),
                              options=opts)
    try:
        driver.get(f"file://{path}")
        broken = driver.execute_script(
            "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt)")
        n_images = driver.execute_script("return document.images.length")
        n_tables = driver.execute_script("return document.querySelectorAll('table tbody tr').length")
        text = driver.execute_script("return document.body.innerText")
        driver.save_screenshot(str(screenshot))
    finally:
        driver.quit()
    return broken, n_images, n_tables, text


@pytest.fixture(scope="module")
def monitored_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "run"
    run = selfsup.train("digits", method="simclr", epochs=4, out=out, encoder_options=SMALL, select="rankme",
                        log_every=2)
    from selfsup.evaluate import evaluate_run
    from selfsup.artifacts import write_json
    write_json(out / "eval.json", evaluate_run(selfsup.load(out), "digits"))
    return out, run


def test_report_opens_in_browser_with_all_images(monitored_run, tmp_path):
    out, _ = monitored_run
    path = build_report(selfsup.load(out))
    broken, n_images, n_rows, text = open_in_chromium(path.resolve(), tmp_path / "shot.png")
    assert broken == [] and n_images == 4  # curves, embedding map, neighbours, confusion matrix
    assert n_rows > 10
    for heading in ("Training curves", "Evaluation", "Embedding map", "Nearest neighbours", "Confusion matrix"):
        assert heading in text
    assert "http" not in path.read_text().replace("http-equiv", "")  # self-contained: nothing fetched
    assert (tmp_path / "shot.png").stat().st_size > 10_000


def test_metrics_have_per_epoch_diagnostics(monitored_run):
    out, _ = monitored_run
    epochs = [json.loads(l) for l in open(out / "metrics.jsonl") if '"type": "epoch"' in l]
    assert len(epochs) == 4
    for e in epochs:
        assert {"rankme", "alignment", "uniformity", "embedding_std", "collapsed", "online_knn_acc"} <= set(e)
        assert 1 <= e["rankme"] <= 32 and 0 <= e["alignment"] <= 4 and -4 <= e["uniformity"] <= 0


def test_select_rankme_keeps_best_checkpoint(monitored_run):
    out, _ = monitored_run
    epochs = [json.loads(l) for l in open(out / "metrics.jsonl") if '"type": "epoch"' in l]
    best = max(range(len(epochs)), key=lambda i: epochs[i]["rankme"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["selected"].startswith(f"rankme (epoch {best}")
    # Recompute RankMe of the saved encoder on the monitor's subset: it must be the best epoch's value.
    ds = selfsup.load_dataset("digits")
    idx = np.sort(np.random.default_rng(0).choice(len(ds.train), size=min(2048, len(ds.train)), replace=False))
    z = selfsup.load(out).embed(ds.train.x[idx])
    assert rankme(z) == pytest.approx(epochs[best]["rankme"], rel=1e-4)


def test_rankme_knn_correlation():
    epochs = [{"rankme": r, "online_knn_acc": a} for r, a in ((1, 0.1), (2, 0.2), (3, 0.3), (4, 0.25))]
    assert rankme_knn_correlation(epochs) == pytest.approx(0.8)
    assert rankme_knn_correlation(epochs[:2]) is None
