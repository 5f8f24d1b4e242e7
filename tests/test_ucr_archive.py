"""`benchmarks/ucr.py --archive DIR` on a tiny generated archive of two problems (one in the .ts layout, one in the UCR
2018 .tsv layout): every problem runs, each run is appended as it finishes, an interrupted archive resumes without
running a finished problem again, and the summary against a published CSV counts wins, ties, losses and ranks."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import ucr  # noqa: E402


def two_class_series(rng: np.random.Generator, n: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    y = np.arange(n) % 2
    t = np.linspace(0, 1, length)
    x = np.sin(2 * np.pi * (1 + 2 * y[:, None]) * t[None]) + 0.1 * rng.standard_normal((n, length))
    return x, y


def write_ts(path: Path, name: str, x: np.ndarray, y: np.ndarray) -> None:
    lines = [f"@problemName {name}", "@timeStamps false", "@missing false", "@univariate true", "@equalLength true",
             f"@seriesLength {x.shape[1]}", "@classLabel true 0 1", "@data"]
    lines += [",".join(f"{v:.5f}" for v in row) + f":{label}" for row, label in zip(x, y)]
    path.write_text("\n".join(lines) + "\n")


def write_tsv(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    path.write_text("\n".join("\t".join([str(label)] + [f"{v:.5f}" for v in row]) for row, label in zip(x, y)) + "\n")


@pytest.fixture
def archive(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "Archive"
    for name, layout in (("Alpha", "ts"), ("Beta", "tsv")):
        (root / name).mkdir(parents=True)
        for split in ("TRAIN", "TEST"):
            x, y = two_class_series(rng, 12, 24)
            if layout == "ts":
                write_ts(root / name / f"{name}_{split}.ts", name, x, y)
            else:
                write_tsv(root / name / f"{name}_{split}.tsv", x, y)
    (root / "notes").mkdir()  # a folder without a problem is skipped
    published = tmp_path / "published.csv"
    published.write_text("problem,TS2Vec,T-Loss\nAlpha,0.5,1.0\nBeta,0.4,\n")
    return root, published


def test_an_archive_runs_every_problem_and_resumes_after_an_interruption(archive, tmp_path, monkeypatch):
    root, published = archive
    results, out = tmp_path / "runs.jsonl", tmp_path / "summary.json"
    argv = ["--archive", str(root), "--seeds", "1", "--iters", "2", "--jobs", "1", "--threads", "1",
            "--results", str(results), "--out", str(out), "--published", str(published)]
    assert [name for name, _ in ucr.archive_problems(str(root))] == ["Alpha", "Beta"]
    real, calls = ucr.one_run, []

    def interrupted(name, *args):
        calls.append(name)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C during the second problem
        return real(name, *args)

    monkeypatch.setattr(ucr, "one_run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ucr.main(argv)
    assert [json.loads(line)["dataset"] for line in results.read_text().splitlines()] == ["Alpha"]
    assert not out.exists()  # no summary that looks complete
    calls.clear()
    monkeypatch.setattr(ucr, "one_run", lambda name, *args: calls.append(name) or real(name, *args))
    assert ucr.main(argv) == 0
    assert calls == ["Beta"]  # Alpha was not run again
    assert [json.loads(line)["dataset"] for line in results.read_text().splitlines()] == ["Alpha", "Beta"]
    doc = json.loads(out.read_text())
    assert set(doc["datasets"]) == {"Alpha", "Beta"} and doc["archive"]["resumed_runs"] == 1
    summary = doc["archive"]
    accs = {n: round(doc["datasets"][n]["acc_mean"], 3) for n in ("Alpha", "Beta")}
    assert summary["problems"] == 2 and summary["mean_acc"] == pytest.approx(np.mean(list(accs.values())), abs=1e-4)
    ts2vec = summary["versus"]["TS2Vec"]
    assert ts2vec["problems"] == 2
    assert ts2vec["wins"] == (accs["Alpha"] > 0.5) + (accs["Beta"] > 0.4)
    assert ts2vec["wins"] + ts2vec["ties"] + ts2vec["losses"] == 2
    tloss = summary["versus"]["T-Loss"]
    assert tloss["problems"] == 1 and tloss["losses"] + tloss["ties"] == 1  # nothing beats 1.0
    ranks = summary["average_rank"]  # only Alpha has all three methods
    alpha = accs["Alpha"]
    expected_selfsup = 1.5 if alpha == 1.0 else 2.0 if alpha > 0.5 else 2.5 if alpha == 0.5 else 3.0
    assert ranks == {"problems": 1, "selfsup": expected_selfsup, "T-Loss": 1.5 if alpha == 1.0 else 1.0,
                     "TS2Vec": 3.0 if alpha >= 0.5 and alpha != 0.5 else 2.5 if alpha == 0.5 else 2.0}
    assert "one after another in this process" in doc["seconds_note"]
    assert doc["datasets"]["Alpha"]["published"]["TS2Vec"] == 0.5


def test_a_torn_last_line_is_dropped_and_that_run_done_again(tmp_path):
    path = tmp_path / "runs.jsonl"
    ucr.append_result(path, {"dataset": "Alpha", "seed": 0, "acc": 1.0})
    with open(path, "a") as f:
        f.write('{"dataset": "Beta", "se')  # killed while writing
    assert ucr.read_results(path) == [{"dataset": "Alpha", "seed": 0, "acc": 1.0}]
    ucr.append_result(path, {"dataset": "Beta", "seed": 0, "acc": 0.5})  # the redone run lands on a line of its own
    assert [r["dataset"] for r in ucr.read_results(path)] == ["Alpha", "Beta"]


def test_the_official_code_runs_beside_selfsup_on_the_same_problems_and_resumes(archive, tmp_path, monkeypatch):
    """--peer official: the authors' TS2Vec (PyPI ts2vec 0.1) on the same problems and seeds, scored by the same
    protocol; its runs are appended and resumed like selfsup's, and the summary gives both and their time ratio."""
    root, _ = archive
    results, out = tmp_path / "runs.jsonl", tmp_path / "summary.json"
    argv = ["--archive", str(root), "--seeds", "1", "--iters", "2", "--jobs", "1", "--threads", "1",
            "--results", str(results), "--out", str(out), "--peer", "official"]
    assert ucr.main(argv) == 0
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert sorted((r["dataset"], r.get("peer") or "") for r in rows) == [("Alpha", ""), ("Alpha", "official"),
                                                                   ("Beta", ""), ("Beta", "official")]
    assert all(r["steps"] == 2 for r in rows)  # the official code honoured the same schedule
    doc = json.loads(out.read_text())
    for name in ("Alpha", "Beta"):
        entry = doc["datasets"][name]
        assert 0 <= entry["official"]["acc_mean"] <= 1 and entry["official"]["train_seconds"] > 0
        seconds = {peer: sum(r["train_seconds"] for r in rows if r["dataset"] == name and r.get("peer") == peer)
                   for peer in (None, "official")}
        assert entry["versus_official"]["train_time_ratio"] == pytest.approx(seconds[None] / seconds["official"],
                                                                             abs=2e-3)
        assert entry["versus_official"]["acc_delta"] == pytest.approx(
            entry["acc_mean"] - entry["official"]["acc_mean"], abs=1e-3)
    calls = []
    monkeypatch.setattr(ucr, "official_run", lambda *args: calls.append(args))
    monkeypatch.setattr(ucr, "one_run", lambda *args: calls.append(args))
    assert ucr.main(argv) == 0 and calls == []  # both implementations' runs were resumed, none run again


def test_official_inputs_follow_the_official_loaders():
    """Already z-normalised univariate series pass unchanged; others get one z-score with the training statistics;
    multivariate series are standardised per channel; steps without observation stay NaN."""
    import torch

    from selfsup.data import Split

    rng = np.random.default_rng(0)
    raw = rng.standard_normal((6, 1, 20)).astype(np.float32)
    normalised = (raw - raw.mean(-1, keepdims=True)) / raw.std(-1, keepdims=True, ddof=1)  # as the UCR archive
    padded = np.concatenate([normalised, np.full((6, 1, 3), np.nan, np.float32)], axis=-1)  # padded to the test's
    xtr, xte = ucr.official_inputs(Split(torch.from_numpy(padded)), Split(torch.from_numpy(normalised[:2])))
    assert xtr.shape == (6, 20, 1) and np.array_equal(xtr[..., 0], normalised[:, 0])
    shifted = 3 + 2 * raw
    xtr, xte = ucr.official_inputs(Split(torch.from_numpy(shifted)), Split(torch.from_numpy(shifted[:2] + 1)))
    assert abs(xtr.mean()) < 1e-5 and abs(xtr.std() - 1) < 1e-4
    np.testing.assert_allclose(xte[..., 0], (shifted[:2, 0] + 1 - shifted.mean()) / shifted.std(), rtol=1e-5)
    multi = np.concatenate([raw, 10 + 5 * raw], axis=1)
    multi[0, :, 15:] = np.nan  # a shorter series, NaN-padded
    xtr, _ = ucr.official_inputs(Split(torch.from_numpy(multi)), Split(torch.from_numpy(multi[:2])))
    assert np.isnan(xtr[0, 15:]).all() and not np.isnan(xtr[1:]).any()
    np.testing.assert_allclose(np.nanmean(xtr, axis=(0, 1)), 0, atol=1e-5)
    np.testing.assert_allclose(np.nanstd(xtr, axis=(0, 1)), 1, atol=1e-4)


def test_ablation_scores_by_cross_validation_inside_the_training_split():
    """ucr_ablation.cv_accuracy: held-out folds of the given (training) embeddings only; separable classes score 1,
    labels unrelated to the embeddings score near chance; a variant overrides the base key by key."""
    import ucr_ablation

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 12)
    separable = np.eye(3)[y] * 5 + 0.1 * rng.standard_normal((36, 3))
    assert ucr_ablation.cv_accuracy(separable, y, seed=0) == 1.0
    noise = rng.standard_normal((36, 3))
    assert ucr_ablation.cv_accuracy(noise, y, seed=0) < 0.6
    with pytest.raises(SystemExit, match="single training series"):
        ucr_ablation.cv_accuracy(noise[:4], np.array([0, 0, 0, 1]), seed=0)
    combined = ucr_ablation.merged(ucr_ablation.VARIANTS["no timestamp mask + width 32"])
    assert combined["encoder_options"] == {"hidden": 32}
    assert combined["method_options"] == {**ucr_ablation.BASE["method_options"], "mask_p": 0.0}
