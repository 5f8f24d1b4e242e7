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
