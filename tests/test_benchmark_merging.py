"""Benchmark result files that several invocations fill: a run replaces its own rows and keeps the others'."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import fmnist_budget  # noqa: E402


def budget_row(seed, precision, preset="rotnet", minutes=10.0, knn=0.8):
    return {"seed": seed, "precision": precision, "minutes": minutes, "knn_acc": knn, "linear_acc": 0.9,
            "configuration": {"preset": {"method": preset}}, "targets": {},
            "baselines": {"raw": {"knn_acc": 0.81, "linear_acc": 0.84},
                          "random_encoder": {"knn_acc": 0.79, "linear_acc": 0.86}}}


def test_budget_runs_of_another_precision_are_kept_and_the_same_seed_replaced():
    previous = {"runs": [budget_row(0, "bf16"), budget_row(1, "bf16"), budget_row(0, "fp32", knn=0.7)]}
    merged = fmnist_budget.merged_runs(previous, [budget_row(0, "fp32", knn=0.85)])
    assert [(r["seed"], r["precision"], r["knn_acc"]) for r in merged] == [
        (0, "bf16", 0.8), (1, "bf16", 0.8), (0, "fp32", 0.85)]
    summary = fmnist_budget.seed_summary(merged)["summary"]
    assert summary["bf16"]["seeds"] == [0, 1] and summary["fp32"]["seeds"] == [0]


def test_budget_runs_of_another_preset_or_budget_are_dropped():
    previous = {"runs": [budget_row(1, "bf16", preset="simclr"), budget_row(2, "bf16", minutes=3.0)]}
    assert fmnist_budget.merged_runs(previous, [budget_row(0, "bf16")]) == [budget_row(0, "bf16")]
    assert fmnist_budget.merged_runs(None, [budget_row(0, "bf16")]) == [budget_row(0, "bf16")]


def tabular_doc(uri, seeds=(0,), config=None):
    import tabular

    def row(mean):
        return {"mean": mean, "std": 0.01, "n": 5}
    summary = {f: {name: row(0.8) for name in tabular.PROTOCOLS} for f in ("0.01", "0.1", "1")}
    for f in ("1",):
        del summary[f]["trees"], summary[f]["raw_trees"]
    return {"config": config or dict(tabular.CONFIG), "seeds": list(seeds), "draw_seeds": [0, 1, 2, 3, 4],
            "label_fractions": list(tabular.FRACTIONS), "command": f"run {uri}", "machine": {"cpu": "x"},
            "seconds": 1.0, "skipped": {},
            "results": {uri: {"summary": summary, "per_seed": [{"precision": "fp32"}]}}}


def test_tabular_results_of_parallel_runs_combine_and_refuse_other_settings(tmp_path, capsys):
    import pytest

    import tabular

    out = tmp_path / "tabular.json"
    assert tabular.combine([tabular_doc("a:x"), tabular_doc("b:y")], out) == 0
    import json
    doc = json.loads(out.read_text())
    assert set(doc["results"]) == {"a:x", "b:y"} and doc["seconds"] == 2.0 and len(doc["machine"]) == 2
    assert doc["verdict"]["probe vs raw_probe"]["b:y 10%"] == {"diff": 0.0, "result": "level"}
    assert "| x | 100% |" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="seeds"):
        tabular.combine([tabular_doc("a:x"), tabular_doc("b:y", seeds=(0, 1))], out)


def test_tabular_files_of_other_epoch_caps_combine_only_where_the_training_was_the_same(tmp_path):
    """A cap that did not bind on a table trained it the same: its figures may join a file of another cap; a table
    the new cap trains differently must be measured again."""
    import pytest

    import tabular

    old_cfg = {**tabular.CONFIG, "max_epochs": 100, "epoch_cap_below_rows": None}  # a cap on every table
    new_cfg = {**tabular.CONFIG, "max_epochs": 300, "epoch_cap_below_rows": None}
    big, small = tabular_doc("big:t", config=old_cfg), tabular_doc("small:t", config=old_cfg)
    for doc, rows in ((big, 5000), (small, 1000)):
        r = doc["results"][next(iter(doc["results"]))]
        r["n_train"] = rows
        r["per_seed"][0]["pretrain_epochs"] = tabular.pretrain_epochs(old_cfg, rows)
    fresh = tabular_doc("other:t", config=new_cfg)
    fresh["results"]["other:t"].update(n_train=800)
    fresh["results"]["other:t"]["per_seed"][0]["pretrain_epochs"] = tabular.pretrain_epochs(new_cfg, 800)
    assert tabular.combine([big, fresh], tmp_path / "a.json") == 0  # 5,000 rows: 39 steps an epoch, 39 epochs
    gives = tabular.pretrain_epochs(new_cfg, 1000)  # 7 steps an epoch: 215 under a cap of 300
    with pytest.raises(SystemExit, match=f"small:t was pre-trained for \\[100\\] epochs.*gives {gives}"):
        tabular.combine([small, fresh], tmp_path / "b.json")
    with pytest.raises(SystemExit, match="beyond the epoch cap"):
        tabular.combine([tabular_doc("a:x", config={**old_cfg, "steps": 10}), fresh], tmp_path / "c.json")
    # the default's cap binds below 1,000 rows only: a 500-row table keeps its 100 epochs, a 1,000-row one does not
    rule = tabular_doc("rule:t", config=dict(tabular.CONFIG))
    rule["results"]["rule:t"].update(n_train=800)
    rule["results"]["rule:t"]["per_seed"][0]["pretrain_epochs"] = tabular.pretrain_epochs(tabular.CONFIG, 800)
    tiny = tabular_doc("tiny:t", config=old_cfg)
    tiny["results"]["tiny:t"].update(n_train=500)
    tiny["results"]["tiny:t"]["per_seed"][0]["pretrain_epochs"] = tabular.pretrain_epochs(old_cfg, 500)
    assert tabular.pretrain_epochs(tabular.CONFIG, 500) == 100 and tabular.pretrain_epochs(tabular.CONFIG, 1000) == 215
    assert tabular.combine([tiny, rule], tmp_path / "d.json") == 0
    with pytest.raises(SystemExit, match="small:t was pre-trained for \\[100\\] epochs.*gives 215"):
        tabular.combine([small, rule], tmp_path / "e.json")


def test_tabular_level_means_within_the_larger_std():
    import tabular

    def s(mean, std):
        return {"mean": mean, "std": std, "n": 5}
    assert tabular.compare(s(0.80, 0.02), s(0.81, 0.005)) == "level"
    assert tabular.compare(s(0.80, 0.005), s(0.82, 0.005)) == "behind"  # the negative control
    assert tabular.compare(s(0.83, 0.005), s(0.82, 0.005)) == "ahead"
    assert tabular.compare(s(0.821, 0.005), s(0.82, 0.005)) == "ahead"


def test_graph_entries_merged_keep_the_machine_of_each_method_and_drop_other_baselines():
    import graphs

    def entry(methods, machine, raw=88.0):
        return {"seeds": [0, 1], "machine": {"cpu": machine}, "command": f"graphs.py --methods {','.join(methods)}",
                "baselines": {"raw node-label counts": {"per_seed": [raw, raw], "acc_mean": raw},
                              "WL subtree kernel": {"per_seed": [80.0, 80.0], "acc_mean": 80.0}},
                "methods": {m: {"acc_mean": 85.0, "random_encoder": {"acc_mean": 84.0}, "train_seconds": [1.0],
                                "selected_by_inner_cv": {"acc_mean": 85.0}} for m in methods}}
    first = entry(["graphcl", "dgi"], "A")
    second = graphs.merged(first, entry(["dgi"], "B"), None)
    third = graphs.merged(second, entry(["grace"], "C"), None)
    assert {m: r["machine"]["cpu"] for m, r in third["methods"].items()} == {"graphcl": "A", "dgi": "B", "grace": "C"}
    assert third["machine"] == {"cpu": "C"} and len(third["commands"]) == 3
    other = graphs.merged(third, entry(["bgrl"], "D", raw=87.0), None)  # other baselines: the old methods go
    assert list(other["methods"]) == ["bgrl"] and other["commands"] == ["graphs.py --methods bgrl"]
    # a command stays while it is the last to have measured one of the entry's methods
    assert third["commands"] == ["graphs.py --methods graphcl,dgi", "graphs.py --methods dgi",
                                 "graphs.py --methods grace"]
    assert graphs.command_methods("graphs.py --part mutag --methods=dgi,grace") == ["dgi", "grace"]
    assert graphs.command_methods("graphs.py --part mutag") == list(graphs.METHODS)
    again = graphs.merged(third, entry(["graphcl"], "E"), None)
    assert again["commands"] == ["graphs.py --methods dgi", "graphs.py --methods grace", "graphs.py --methods graphcl"]
