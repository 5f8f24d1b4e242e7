"""The Python API: train/load/embed, determinism, and the scikit-learn transformer in a Pipeline."""
import json

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

import selfsup

SMALL = {"widths": [16, 32, 32, 32]}


def losses(path):
    return [json.loads(l)["loss"] for l in open(path / "metrics.jsonl") if '"step"' in l]


def test_same_seed_same_loss_curve(tmp_path):
    """Bit-for-bit equal curves need a fixed thread count (README): the adaptive default may give a run fewer threads
    when something else runs, and another summation order (CI once saw 2.004894 against 2.004857 at step 1)."""
    heads = {"proj_hidden_dim": 256, "pred_hidden_dim": 256}
    for name in ("a", "b"):
        selfsup.train("digits", method="byol", epochs=2, seed=3, log_every=1, out=tmp_path / name,
                      encoder_options=SMALL, method_options=heads, monitor=False, threads=2)
    assert len(losses(tmp_path / "a")) == 10 and losses(tmp_path / "a") == losses(tmp_path / "b")
    selfsup.train("digits", method="byol", epochs=2, seed=4, log_every=1, out=tmp_path / "c", encoder_options=SMALL,
                  method_options=heads, monitor=False, threads=2)
    assert losses(tmp_path / "c") != losses(tmp_path / "a")


def test_run_directory_is_complete_and_loadable(digits_run):
    names = {p.name for p in digits_run.iterdir()}
    assert {"config.yaml", "encoder.safetensors", "method.safetensors", "metrics.jsonl", "summary.json"} <= names
    run = selfsup.load(digits_run)
    z = run.embed(np.zeros((3, 8, 8), np.uint8))
    assert z.shape == (3, run.encoder.out_dim) and z.dtype == np.float32


def test_interrupted_run_never_looks_complete(tmp_path, monkeypatch):
    from selfsup.training import session

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(session, "run_loop", boom)
    with pytest.raises(KeyboardInterrupt):
        selfsup.train("digits", epochs=1, out=tmp_path / "run", encoder_options=SMALL)
    assert not (tmp_path / "run").exists()
    with pytest.raises(selfsup.SelfSupError):
        selfsup.load(tmp_path / "run")


def test_an_unexpected_os_error_in_training_keeps_its_cause(tmp_path, monkeypatch):
    """Only a full disk becomes a one-line training error; any other OSError leaves the loop as it was raised."""
    import errno

    from selfsup.training import session

    def broken(*a, **k):
        try:
            raise ValueError("the real reason")
        except ValueError as exc:
            raise OSError(errno.EIO, "input/output error") from exc

    monkeypatch.setattr(session, "run_loop", broken)
    with pytest.raises(OSError) as err:
        selfsup.train("digits", epochs=1, out=tmp_path / "run", encoder_options=SMALL)
    assert err.value.errno == errno.EIO and isinstance(err.value.__cause__, ValueError)


def test_sklearn_pipeline():
    from sklearn.datasets import load_digits
    d = load_digits()
    x = (d.images * 255 / 16).astype(np.uint8)
    pipe = make_pipeline(selfsup.SelfSupervisedEmbedder(method="vicreg", epochs=2, method_options={"proj_dim": 256,
                                                        "proj_hidden_dim": 256}), LogisticRegression(max_iter=200))
    pipe.fit(x[:1000], d.target[:1000])
    assert pipe.score(x[1000:], d.target[1000:]) > 0.5
    c = clone(pipe)
    assert c.steps[0][1].get_params()["method"] == "vicreg"
    with pytest.raises(Exception):
        c.transform(x[:5])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_embed_on_cuda_from_a_cpu_run_and_a_run_trained_on_cuda(tmp_path):
    """`embed(device="cuda")` moves the encoder there for the call and back afterwards; a run trained on CUDA in bf16
    embeds on either device. (benchmarks/gpu_check.py runs every method and modality this way.)"""
    from sklearn.datasets import load_digits

    x = np.round(load_digits().images[:64] * (255 / 16)).astype(np.uint8)
    run = selfsup.train("digits", method="simclr", epochs=1, encoder_options=SMALL, device="cpu", monitor=False)
    on_cpu, on_cuda = run.embed(x), run.embed(x, device="cuda")
    assert next(run.encoder.parameters()).device.type == "cpu"
    np.testing.assert_allclose(on_cuda, on_cpu, rtol=1e-3, atol=1e-3)
    trained = selfsup.train("digits", method="simclr", epochs=1, encoder_options=SMALL, device="cuda", monitor=False)
    assert trained.summary["precision"] == ("bf16" if torch.cuda.is_bf16_supported() else "fp32")
    np.testing.assert_allclose(trained.embed(x, device="cpu"), trained.embed(x, device="cuda"), rtol=1e-3, atol=1e-3)


def test_resolved_settings_round_trip_and_a_damaged_record_is_one_line(tmp_path):
    """config.yaml's `resolved:` reads back as the typed settings the run trained with; a missing or unknown setting,
    or a record that is no mapping, is a one-line DataError naming the file, never a KeyError later."""
    import re

    import yaml

    from selfsup.errors import DataError
    from selfsup.resolved import Resolved

    run = selfsup.train("digits", method="simclr", epochs=1, encoder_options=SMALL, out=tmp_path / "r", monitor=False)
    assert isinstance(run.resolved, Resolved) and selfsup.load(tmp_path / "r").resolved == run.resolved
    assert "world_size" not in run.resolved.to_dict()  # distributed settings only for several processes
    config = tmp_path / "r" / "config.yaml"
    doc = yaml.safe_load(config.read_text())
    for damaged, message in ((dict(doc["resolved"], colour="red"), "unknown resolved setting(s) colour"),
                             ({k: v for k, v in doc["resolved"].items() if k != "encoder"}, "encoder missing"),
                             ([1, 2], "'resolved' must be a mapping")):
        config.write_text(yaml.safe_dump({**doc, "resolved": damaged}))
        with pytest.raises(DataError, match=re.escape(message)) as caught:
            selfsup.load(tmp_path / "r")
        assert str(config) in str(caught.value) and "\n" not in str(caught.value)


def test_a_run_trained_on_a_dataset_in_memory_is_evaluated_on_it_never_on_the_source_of_its_name(tmp_path):
    import dataclasses

    from selfsup.data import Split
    from selfsup.evaluate import evaluate_run
    from selfsup.loading import load_dataset

    digits = load_dataset("digits")
    part = dataclasses.replace(digits, train=Split(digits.train.x[:300], digits.train.y[:300]),
                               test=Split(digits.test.x[:100], digits.test.y[:100]))
    run = selfsup.train(part, method="simclr", epochs=1, batch_size=64, threads=1, monitor=False,
                        out=tmp_path / "run")
    assert run.config.data == "digits" and run.resolved.data_in_memory
    result = evaluate_run(run, protocols=("knn",), baselines=False)
    assert (result["n_train"], result["n_test"]) == (300, 100)  # not digits' 1,347 and 450
    loaded = selfsup.load(tmp_path / "run")
    with pytest.raises(selfsup.SelfSupError, match=r"trained on data given in Python \('digits'\), not a data "
                       r"source: give the data"):
        evaluate_run(loaded, protocols=("knn",))
    assert evaluate_run(loaded, part, protocols=("knn",), baselines=False)["n_train"] == 300
    # a run trained on a source URI still reads it by name
    by_name = selfsup.train("digits", method="simclr", epochs=1, batch_size=64, threads=1, monitor=False)
    assert not by_name.resolved.data_in_memory and "data_in_memory" not in by_name.resolved.to_dict()
