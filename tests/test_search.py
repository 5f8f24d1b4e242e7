"""`train --search`: successive halving within the budget, resuming an interrupted search, and the command on digits."""
import json

import numpy as np
import pytest

from selfsup.cli import main
from selfsup.data import Dataset, Split
from selfsup.errors import ConfigError
from selfsup.evaluation.criteria import CRITERIA
from selfsup.modalities import get_modality, modalities
from selfsup.search import (MIN_SCREEN_SECONDS, Candidate, SearchState, candidates_for, halving_rounds,
                            load_state, search, successive_halving, why_chosen)

QUALITY = {"a": 0.1, "b": 0.7, "c": 0.3, "d": 0.9, "e": 0.5, "f": 0.2, "g": 0.8}


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def fake_screen(clock: FakeClock, calls: list, fail_at: int | None = None):
    """A screen that 'trains' for exactly its seconds on the fake clock; a candidate's score grows with its time
    (so later rounds score higher) and keeps the candidates' order; it raises at call number `fail_at`."""
    def screen(c: Candidate, r: int, seconds: float) -> dict:
        if fail_at is not None and len(calls) == fail_at:
            raise KeyboardInterrupt
        calls.append((c.name, r, seconds))
        clock.now += seconds
        return {"scores": {"view_retrieval": QUALITY[c.name] + 0.01 * seconds, "rankme": -QUALITY[c.name]}}
    return screen


def candidates() -> list[Candidate]:
    return [Candidate(name, {"method": name}) for name in QUALITY]


def test_rounds_keep_a_third_until_one_is_left():
    assert halving_rounds(7) == [7, 3]
    assert halving_rounds(9) == [9, 3]
    assert halving_rounds(10) == [10, 4, 2]
    assert halving_rounds(2) == [2] and halving_rounds(1) == []


def test_successive_halving_screens_within_half_the_budget_and_keeps_the_best():
    clock, calls = FakeClock(), []
    state = SearchState("view_retrieval", budget_seconds=420.0)
    winner = successive_halving(candidates(), state, fake_screen(clock, calls), clock=clock)
    first = [c for c in calls if c[1] == 0]
    second = [c for c in calls if c[1] == 1]
    assert len(first) == 7 and all(s == pytest.approx(210 / 2 / 7) for _, _, s in first)
    assert [n for n, _, _ in second] == ["d", "g", "b"]  # the best third of round 1, best first
    assert all(s == pytest.approx((210 - 105) / 3) for _, _, s in second)
    assert winner.name == "d" and state.winner == "d"
    assert state.spent_seconds == pytest.approx(210.0) and state.final_seconds == pytest.approx(210.0)
    assert state.rounds[0]["ranking"] == ["d", "g", "b", "e", "c", "f", "a"]
    assert state.rounds[1]["kept"] == ["d"]


def test_the_criterion_decides():
    clock = FakeClock()
    state = SearchState("rankme", budget_seconds=420.0)
    assert successive_halving(candidates(), state, fake_screen(clock, []), clock=clock).name == "a"


def test_without_a_criterion_the_search_ranks_by_its_modality_s(tmp_path):
    """Every modality declares a known criterion; a search told none ranks by (and records) its data's modality's,
    one told a criterion by that one."""
    assert all(get_modality(m).search_criterion in CRITERIA for m in modalities.names())
    audio = get_modality("audio")
    assert audio.search_criterion == "rankme" != get_modality("image").search_criterion
    clips = Dataset("toy", "audio", Split(audio.from_array(audio.toy_data(8, np.random.default_rng(0)), "toy")))

    def refuse(options, folder):
        raise ConfigError("not trained in this test")

    for criterion, recorded in ((None, "rankme"), ("lidar", "lidar")):
        out = tmp_path / f"run-{criterion}"
        with pytest.raises(ConfigError, match="no candidate could be trained"):
            search({"data": "toy"}, clips, out, 1.0, refuse, criterion)
        assert json.loads((tmp_path / f"run-{criterion}.search" / "search.json").read_text())["criterion"] == recorded
    # carried on: told none again, or the criterion it resolved to, it goes on; told another, it says which to give
    for criterion in (None, "rankme"):
        with pytest.raises(ConfigError, match="no candidate could be trained"):
            search({"data": "toy"}, clips, tmp_path / "run-None", 1.0, refuse, criterion)
    with pytest.raises(ConfigError, match="another search.*with --search-criterion rankme"):
        search({"data": "toy"}, clips, tmp_path / "run-None", 1.0, refuse, "lidar")


def test_encoder_options_given_to_a_search_go_to_every_candidate(tmp_path):
    audio = get_modality("audio")
    clips = Dataset("toy", "audio", Split(audio.from_array(audio.toy_data(8, np.random.default_rng(0)), "toy")))
    seen = []

    def record(options, folder):
        seen.append(options)
        raise ConfigError("not trained in this test")

    with pytest.raises(ConfigError, match="no candidate could be trained"):
        search({"data": "toy", "encoder_options": {"dropout": 0.2}}, clips, tmp_path / "run", 1.0, record)
    assert len(seen) == len(candidates_for("toy", "audio", {})) > 1
    assert all(o["encoder_options"] == {"dropout": 0.2} for o in seen)
    # a screen is thrown away when interrupted, so it writes no checkpoint and runs no per-epoch monitor
    assert all(o["checkpoint_minutes"] is None and o["checkpoint_every_steps"] is None and o["monitor"] is False
               for o in seen)


def test_a_tiny_budget_still_screens_each_candidate_for_the_minimum():
    clock, calls = FakeClock(), []
    state = SearchState("view_retrieval", budget_seconds=1.0)
    successive_halving(candidates(), state, fake_screen(clock, calls), clock=clock)
    assert all(s == MIN_SCREEN_SECONDS for _, _, s in calls)
    assert state.final_seconds == MIN_SCREEN_SECONDS


def test_an_interrupted_search_carries_on_without_screening_again():
    clock, calls, saved = FakeClock(), [], []
    state = SearchState("view_retrieval", budget_seconds=420.0)
    with pytest.raises(KeyboardInterrupt):
        successive_halving(candidates(), state, fake_screen(clock, calls, fail_at=4), clock=clock,
                           save=lambda s: saved.append(json.dumps(s.to_dict())))
    assert len(calls) == 4
    resumed = SearchState.from_dict(json.loads(saved[-1]))  # what search.json held when it stopped
    more: list = []
    winner = successive_halving(candidates(), resumed, fake_screen(clock, more), clock=clock)
    assert [n for n, r, _ in more if r == 0] == ["e", "f", "g"]  # only the screens not done before
    assert [s for _, r, s in calls + more if r == 0] == [pytest.approx(210 / 2 / 7)] * 7  # the round keeps its time
    assert winner.name == "d" and len(resumed.screens) == 10


def test_failed_or_non_finite_screens_rank_last_and_all_failing_is_one_error():
    clock = FakeClock()

    def screen(c: Candidate, r: int, seconds: float) -> dict:
        if c.name == "d":
            return {"error": "loss is not finite", "scores": {}}
        return {"scores": {"view_retrieval": float("nan") if c.name == "g" else QUALITY[c.name]}}

    state = SearchState("view_retrieval", budget_seconds=60.0)
    assert successive_halving(candidates(), state, screen, clock=clock).name == "b"
    assert state.rounds[0]["ranking"][-2:] in (["g", "d"], ["d", "g"])
    with pytest.raises(ConfigError, match="no candidate could be trained and scored.*a: boom"):
        successive_halving(candidates(), SearchState("view_retrieval", 60.0),
                           lambda c, r, s: {"error": "boom", "scores": {}}, clock=clock)


def test_the_record_says_when_the_criterion_could_not_choose():
    clock = FakeClock()
    state = SearchState("view_retrieval", budget_seconds=60.0)
    successive_halving(candidates(), state, lambda c, r, s: {"scores": {"view_retrieval": 0.5}}, clock=clock)
    assert state.winner == "a" and "could not choose" in why_chosen(state)
    state = SearchState("view_retrieval", budget_seconds=420.0)
    successive_halving(candidates(), state, fake_screen(clock, []), clock=clock)
    assert why_chosen(state).startswith("d had the highest view_retrieval")


def test_a_state_of_another_search_is_refused(tmp_path):
    (tmp_path / "search.json").write_text(json.dumps(SearchState("view_retrieval", 60.0, "digits").to_dict()))
    assert load_state(tmp_path, "view_retrieval", 60.0, "digits").budget_seconds == 60.0
    with pytest.raises(ConfigError, match="another search"):
        load_state(tmp_path, "view_retrieval", 60.0, "fashion-mnist")
    (tmp_path / "search.json").write_text('{"old": 1}')
    with pytest.raises(ConfigError, match="not a search record"):
        load_state(tmp_path, "view_retrieval", 60.0, "digits")


def test_candidates_are_the_preset_and_the_search_space():
    found = candidates_for("digits", "image", {"data": "digits", "seed": 1})
    assert found[0].name == "preset" and found[0].options["method"] == "moco" and found[0].options["seed"] == 1
    assert [c.name for c in found[1:]] == ["simclr", "moco", "byol", "vicreg", "barlow_twins", "rotnet"]
    assert [c.name for c in candidates_for("folder:photos", "image", {})][0] == "simclr"  # a source without preset
    with pytest.raises(ConfigError, match="no search space"):
        candidates_for("x", "hologram", {})


def test_every_modality_has_a_search_space_of_methods_that_train_on_it():
    from selfsup.compatibility import trains_on
    from selfsup.methods import methods
    from selfsup.modalities import get_modality, modalities
    from selfsup.search import SEARCH_SPACES

    assert set(SEARCH_SPACES) == set(modalities.names())
    assert all(trains_on(methods.get(m), get_modality(d)) for d, names in SEARCH_SPACES.items() for m in names)


def test_search_on_digits_records_candidates_scores_and_choice(tmp_path, capsys, monkeypatch):
    """The whole command on real data, with screens of a fifth of a second (the logic of their lengths, the halving and
    the resume is tested above on a clock of its own)."""
    import selfsup.search

    monkeypatch.setattr(selfsup.search, "MIN_SCREEN_SECONDS", 0.2)
    out = tmp_path / "run"
    assert main(["train", "--data", "digits", "--search", "0.05", "--out", str(out), "--quiet", "--threads", "1",
                 "--encoder-option", "widths=[8,16,16,16]"]) == 0  # every candidate's ConvNet-4, small
    printed = capsys.readouterr().out
    doc = json.loads((out / "search.json").read_text())
    assert doc["labels_used"] is False and doc["criterion"] == "view_retrieval"
    assert set(doc["candidates"]) == {"preset", "simclr", "moco", "byol", "vicreg", "barlow_twins", "rotnet"}
    assert len(doc["screens"]) == 7 + 3 and doc["choice"] == doc["rounds"][-1]["ranking"][0]
    assert not (tmp_path / "run.search").exists()
    assert all(screen["seconds"] == 0.2 and "error" not in screen for screen in doc["screens"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == doc["candidates"][doc["choice"]]["method"]
    assert "search by view_retrieval" in printed and f"choice: {doc['choice']}" in printed
    assert "How the method was chosen" in (out / "report.html").read_text()
    assert main(["train", "--data", "digits", "--search", "1", "--method", "simclr", "--out", str(tmp_path / "x")]) == 2
    assert "--search chooses the method" in capsys.readouterr().err
    assert main(["train", "--data", "digits", "--search", "1", "--out", str(out)]) == 2  # a finished run stays
    assert "exists" in capsys.readouterr().err


def test_the_python_face_refuses_what_the_search_chooses(tmp_path):
    import selfsup

    with pytest.raises(ConfigError, match="chooses the method"):
        selfsup.train("digits", search=1, out=tmp_path / "r", method_options={"temperature": 0.1})
    with pytest.raises(ConfigError, match="search= takes"):
        selfsup.train("digits", search=1)
