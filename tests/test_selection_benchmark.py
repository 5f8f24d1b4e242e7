"""benchmarks/selection.py's summaries: a modality's figures are the means over its benchmarks, taken for the
criterion its search ranks by (or the one named)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import selection  # noqa: E402


def criteria(rho, regret, margin):
    other = {"spearman": -1.0, "regret_points": 9.0, "vs_default_points": -9.0}
    return {"view_retrieval": {"spearman": rho, "regret_points": regret, "vs_default_points": margin},
            "rankme": dict(other), "alpha_req": dict(other), "lidar": dict(other)}


DOC = {"benchmarks": {
    "series": {"modality": "timeseries", "criteria": criteria(0.2, 3.0, -2.0)},
    "series-b": {"modality": "timeseries", "criteria": criteria(0.8, 0.0, 0.0)},
    "series-c": {"modality": "timeseries", "criteria": criteria(0.2, 0.0, 0.5)},
    "audio": {"modality": "audio", "criteria": {**criteria(0.9, 0.0, 0.0),
                                                "rankme": {"spearman": 0.7, "regret_points": 0.5,
                                                           "vs_default_points": 0.0}}}}}


def test_a_modality_is_the_mean_of_its_benchmarks_for_the_criterion_its_search_uses():
    rows = selection.by_modality(DOC)
    # means, not medians (0.2, 0.0, 0.0): (0.2 + 0.8 + 0.2) / 3, (3 + 0 + 0) / 3, (-2 + 0 + 0.5) / 3
    assert rows["timeseries"] == {"criterion": "view_retrieval", "benchmarks": ["series", "series-b", "series-c"],
                                  "spearman": 0.4, "regret_points": 1.0, "vs_default_points": -0.5}
    # audio searches by RankMe: its view retrieval (0.9) is not the figure
    assert rows["audio"]["criterion"] == "rankme" and rows["audio"]["spearman"] == 0.7
    # naming a criterion takes it everywhere
    assert selection.by_modality(DOC, "view_retrieval")["audio"]["spearman"] == 0.9


def test_the_modality_sentence_counts_modalities_not_benchmarks():
    sentence = selection.modality_summary(DOC)
    assert "on 1 of 2 (audio)" in sentence  # the series mean, 0.4, does not reach 0.6 though one benchmark does
    assert "within a point of the label oracle's on 2 of 2 (timeseries, audio)" in sentence
    assert "below the default on none" in sentence


def test_the_verdicts_bounds_are_inclusive_where_the_targets_say_at_least():
    at = {"x": {"spearman": 0.6, "regret_points": 1.0, "vs_default_points": -1.0}}
    assert selection.verdicts(at) == (["x"], ["x"], [])
    past = {"x": {"spearman": 0.599, "regret_points": 1.01, "vs_default_points": -1.01}}
    assert selection.verdicts(past) == ([], [], ["x"])
