"""Dataset presets: used when no method/encoder is chosen, overridable, and equal to the benchmark's choice."""
import json
from pathlib import Path

from selfsup.presets import PRESETS, with_preset

SEARCH = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "fmnist_budget_search.json"


def test_preset_applies_only_without_method_or_encoder():
    opts, preset = with_preset("fashion-mnist", {"minutes": 10})
    assert preset is PRESETS["fashion-mnist"]
    assert opts["minutes"] == 10 and opts["method"] == preset.options["method"]
    assert with_preset("fashion-mnist", {"method": "byol"}) == ({"method": "byol"}, None)
    assert with_preset("fashion-mnist?dir=/x", {"encoder": "resnet18"})[1] is None
    assert with_preset("digits", {"minutes": 1, "method": "byol"}) == ({"minutes": 1, "method": "byol"}, None)
    assert with_preset("npy:x.npy", {"minutes": 1}) == ({"minutes": 1}, None)


def test_caller_options_override_the_preset():
    opts, _ = with_preset("fashion-mnist", {"batch_size": 64, "augmentation": {"flip_p": 0.0}})
    assert opts["batch_size"] == 64
    assert opts["augmentation"]["flip_p"] == 0.0
    assert {k: v for k, v in opts["augmentation"].items() if k != "flip_p"} == \
        {k: v for k, v in PRESETS["fashion-mnist"].options.get("augmentation", {}).items() if k != "flip_p"}


def test_fashion_mnist_preset_is_the_search_winner():
    search = json.loads(SEARCH.read_text())
    pool = search.get("final_round") or search["candidates"]
    assert search["best"] == max(pool, key=lambda n: pool[n]["val_knn"] + pool[n]["val_linear"])
    assert PRESETS["fashion-mnist"].options == pool[search["best"]]["options"]


def test_digits_preset_is_the_search_winner():
    search = json.loads((SEARCH.parent / "digits_main_job_search.json").read_text())
    best = max(search["candidates"].values(), key=lambda c: c["score"])
    assert PRESETS["digits"].options == {k: v for k, v in best["options"].items() if k != "epochs"}


def test_cli_without_method_uses_the_series_preset(tmp_path, capsys):
    import yaml

    from selfsup.cli import main

    out = tmp_path / "run"
    assert main(["train", "--data", "ucr:ItalyPowerDemand", "--epochs", "1", "--out", str(out), "--no-eval",
                 "--quiet", "--no-monitor"]) == 0
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    config = cfg["train"]
    assert (config["method"], config["encoder"], config["batch_size"]) == ("ts2vec", "dilated_cnn", 8)
    assert "measured preset for ucr:ItalyPowerDemand" in capsys.readouterr().out


def test_a_preset_applies_only_to_the_modality_it_was_measured_on(tmp_path):
    """parquet: reads tables and images; the table preset (SCARF) is for its tables only."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from selfsup.cli import main
    from test_streaming import write_parquet

    table = tmp_path / "table.parquet"
    pq.write_table(pa.table({"a": np.arange(40.0), "b": np.arange(40.0) % 7, "label": np.arange(40) % 2}), table)
    assert with_preset(f"parquet:{table}?label=label", {})[1] is PRESETS["parquet"]  # control: a table has it
    photos = tmp_path / "photos.parquet"
    write_parquet(photos, n=40)
    assert with_preset(f"parquet:{photos}", {}) == ({}, None)
    assert with_preset(f"parquet:{photos}?image=image&label=label", {}) == ({}, None)
    assert with_preset(f"parquet:{table}?label=label", {"modality": "image"})[1] is None
    out = tmp_path / "run"
    assert main(["train", "--data", f"parquet:{photos}?image=image&label=label", "--epochs", "1", "--out", str(out),
                 "--no-eval", "--quiet", "--no-monitor", "--batch-size", "16", "--augment", "size=16"]) == 0
