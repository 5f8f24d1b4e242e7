"""Metric sinks beside metrics.jsonl (--log tensorboard,mlflow): TensorBoard's own reader parses what a run wrote."""
import json

import pytest

import selfsup
from selfsup.errors import ConfigError

TINY = dict(method="simclr", epochs=2, batch_size=256, encoder_options={"widths": [8, 8, 8, 8]},
            method_options={"proj_hidden_dim": 16}, monitor=False, threads=1, log_every=2)


def test_tensorboard_events_match_metrics_jsonl(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    selfsup.train("digits", out=tmp_path / "run", log=["tensorboard"], **TINY)
    records = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    steps = [r for r in records if "step" in r]
    epochs = [r for r in records if r.get("type") == "epoch"]
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard")).Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "train/samples_per_s", "epoch/loss"} <= tags
    loss = events.Scalars("train/loss")
    assert [e.step for e in loss] == [r["step"] for r in steps]
    assert [e.value for e in loss] == pytest.approx([r["loss"] for r in steps], rel=1e-6)
    assert [e.step for e in events.Scalars("epoch/loss")] == [r["steps"] for r in epochs]


def test_a_failing_sink_is_dropped_and_training_goes_on(tmp_path, monkeypatch, capsys):
    pytest.importorskip("tensorboard")
    from selfsup.training import loggers

    def broken(self, record):
        raise OSError("No space left on device")

    monkeypatch.setattr(loggers.TensorBoardSink, "write", broken)
    run = selfsup.train("digits", out=tmp_path / "run", log=["tensorboard"], **TINY)
    assert run.summary["steps"] > 0 and (tmp_path / "run" / "metrics.jsonl").stat().st_size > 0
    err = capsys.readouterr().err
    assert err.count("TensorBoardSink failed and is dropped (OSError: No space left on device)") == 1


def test_mlflow_metrics(tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())  # a file store: no database needed
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    selfsup.train("digits", out=tmp_path / "run", log=["mlflow"], **TINY)
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert runs and runs[0].info.run_name == "run"
    history = mlflow.MlflowClient().get_metric_history(runs[0].info.run_id, "train/loss")
    assert [m.step for m in history][:2] == [1, 2]


def test_unknown_sink_and_sink_without_run_directory_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="--log wandb: unknown; choose from tensorboard, mlflow"):
        selfsup.train("digits", out=tmp_path / "a", log=["wandb"], **TINY)
    with pytest.raises(ConfigError, match="give --out"):
        selfsup.train("digits", log=["tensorboard"], **TINY)
    assert not (tmp_path / "a").exists() and not (tmp_path / "a.partial").exists()
