"""report.html opens in headless Chromium with every image loaded; --select rankme keeps the best-RankMe encoder."""
import json
import re
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import selfsup
from selfsup.evaluation import rankme
from selfsup.report import build_report, rankme_knn_correlation

SMALL = {"widths": [16, 32, 32, 32]}


def open_in_chromium(path, screenshot, width=1280, height=2400):
    """Load a page in headless Chromium; return (images that failed to load, number of images, table rows, text)."""
    pytest.importorskip("selenium.webdriver")
    if not shutil.which("chromedriver") or not (shutil.which("chromium") or shutil.which("chromium-browser")):
        pytest.skip("chromium / chromedriver not installed (scripts/test.sh installs them)")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from report_screenshot import headless_chromium

    driver = headless_chromium(width, height)
    try:
        driver.get(f"file://{path}")
        broken = driver.execute_script(
            "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt)")
        n_images = driver.execute_script("return document.images.length")
        n_tables = driver.execute_script("return document.querySelectorAll('table tbody tr').length")
        text = driver.execute_script("return document.body.innerText")
        overflow = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"the page is {overflow} px wider than a {width}-px window"
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
    """The verdict comes first (each protocol beside the baselines, in points and in words), then the pictures,
    the curves and, folded away, configuration and environment; the page fits a phone-width window. The
    screenshots are test artifacts (in the test's tmp_path), not committed."""
    out, _ = monitored_run
    path = build_report(selfsup.load(out))
    broken, n_images, n_rows, text = open_in_chromium(path.resolve(), tmp_path / "shot.png")
    assert broken == [] and n_images == 4  # curves, embedding map, neighbours, confusion matrix
    assert n_rows >= 2
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines[1] == "Verdict", lines[:3]  # right after the title
    order = [text.index(h) for h in ("Verdict", "Embedding map", "Nearest neighbours", "Confusion matrix",
                                     "Training curves", "Configuration")]
    assert order == sorted(order), order
    assert "linear probe" in lines[2] or "kNN" in lines[2] or "protocol" in lines[2]
    assert "points above raw input" in text or "points below raw input" in text or "on par with raw input" in text
    assert " pt" in text and "%" in text
    # self-contained: nothing fetched (the images' base64 payloads are set aside: "http" occurs in one by chance)
    page = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "data:", path.read_text())
    assert "data:image" in path.read_text() and "http" not in page.replace("http-equiv", "")
    assert (tmp_path / "shot.png").stat().st_size > 10_000
    broken, _, _, _ = open_in_chromium(path.resolve(), tmp_path / "phone.png", width=390, height=2400)
    assert broken == []


def test_verdict_words_and_numbers_for_people():
    from selfsup.report import human, reading, sentence

    assert human(10.0) == "10" and human(0.023999999999999997) == "0.024" and human(3767.2) == "3,767"
    assert sentence("linear probe", 0.993, 0.984, 0.967) == (
        "The linear probe reaches 99.3 %: 0.9 points above raw input (98.4 %) and 2.6 points above a random "
        "encoder (96.7 %).")
    assert "below raw input" in sentence("kNN (k = 200)", 0.88, 0.97, 0.86)
    epochs = [{"epoch": i, "rankme": 100 + 35 * i, "online_knn_acc": 0.98 - 0.006 * i} for i in range(5)]
    (note,) = reading(epochs, {})
    assert "RankMe (label-free) went from 100 to 240" in note and "does not track accuracy" in note


def test_compare_html_for_three_methods(tmp_path):
    from test_bad_inputs import cli

    runs = []
    for method in ("simclr", "byol", "vicreg"):
        out = tmp_path / method
        proc = cli("train", "--data", "digits", "--method", method, "--epochs", "2", "--out", out, "--threads", "1",
                   "--encoder-option", "widths=[8,16,16,16]", "--method-option", "proj_hidden_dim=32", "--quiet",
                   "--no-report")
        assert proc.returncode == 0, proc.stderr
        runs.append(out)
    page = tmp_path / "compare.html"
    proc = cli("compare", *runs, "--html", page)
    assert proc.returncode == 0 and page.exists(), proc.stderr
    broken, n_images, n_rows, text = open_in_chromium(page.resolve(), tmp_path / "compare.png")
    assert broken == [] and n_images == 1
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines[1] == "Verdict"
    header = next(line for line in lines if line.startswith("protocol"))
    assert all(m in header for m in ("simclr", "byol", "vicreg", "raw input", "random encoder")), header
    assert "Configuration differences" in text and "train.method" in text


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
    flat = [{"rankme": r, "online_knn_acc": 0.5} for r in (1, 2, 3)]  # undefined, and no scipy warning reaches the user
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert rankme_knn_correlation(flat) is None


def test_cluster_section_in_the_report(monitored_run, tmp_path):
    """`selfsup cluster` on a run with a report keeps its clustering in the run and adds a clusters section: sizes,
    scores beside the k-means baselines, and each cluster's most and least typical members (images)."""
    import shutil

    from test_bad_inputs import cli

    out = shutil.copytree(monitored_run[0], tmp_path / "run")  # the shared run keeps no clusters for the other tests
    proc = cli("cluster", out, "--k", "10", "--out", tmp_path / "clusters.csv")
    assert proc.returncode == 0 and "with a clusters section" in proc.stdout, proc.stderr
    assert (out / "clusters.csv").exists() and (out / "clusters.json").exists()
    broken, n_images, _, text = open_in_chromium((out / "report.html").resolve(), tmp_path / "clusters.png")
    assert broken == [] and n_images == 5  # the four pictures and the cluster members
    assert "Clusters" in text and "K = 10 clusters by scan" in text and "kmeans raw input" in text
    assert text.index("Clusters") < text.index("Training curves")


def test_embedding_map_draws_a_handful_of_points():
    """t-SNE refuses a perplexity at or above the number of points; a small test split still gets its map."""
    import numpy as np

    from selfsup.report import MIN_MAP_POINTS, embedding_map

    rng = np.random.default_rng(0)
    for n in (MIN_MAP_POINTS, 9, 60):
        assert embedding_map(rng.normal(size=(n, 16)), np.arange(n) % 2, ["a", "b"]).startswith("data:image/png")


def test_nearest_neighbours_rank_the_others_by_cosine_similarity():
    from selfsup.report import nearest

    z = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [-1.0, 0.0], [0.7, 0.7]])
    got = nearest(z, n_queries=5, k=2)
    assert got.sample == 5 and len(got.rows) == 5
    for row, sims in zip(got.rows, got.sims):
        q = row[0]
        assert q not in row[1:] and sims[0] == 1.0 and sims[1] >= sims[2]
    by_query = {row[0]: row[1:] for row in got.rows}
    assert by_query[0] == [1, 4] and by_query[3] == [2, 4]
