"""Choosing the method without labels: `selfsup train --search MINUTES` (and `selfsup.search`).

Candidates are the data's measured preset (when it has one) and the methods of the modality's search space
(`SEARCH_SPACES`), each with its paper's defaults. Successive halving (Jamieson & Talwalkar 2016) screens them
inside the wall-clock budget: half of it goes to the screens, split equally between the rounds; in a round every
surviving candidate trains for the same time from its initial weights and is scored by a label-free criterion
(`selfsup.evaluation.criteria`; the modality's `search_criterion` unless told another) on a sample of the training
items, and the best third goes on to the next round, until one is left. The winner then trains from its initial
weights for what is left of the budget, into the run directory, so its learning-rate schedule spans its whole
training (a screen's cosine schedule has decayed to zero by its end, so continuing from it would need a warm
restart).

Labels are never read. The search's record (every screen's scores, the ranking of each round, the choice and why)
is kept in RUN/search.json; the screens' runs and the record in progress live in RUN.search/ until the run is
complete, so an interrupted search, given the same command again, carries on where it stopped (screens already
scored are not trained again, an interrupted screen starts again, so screens write no checkpoint and run no
per-epoch monitor; an interrupted final run resumes from its checkpoint).
"""
from __future__ import annotations

import json
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .artifacts import write_json
from .data import Dataset, Split
from .errors import ConfigError, SelfSupError
from .evaluation.criteria import CRITERIA, label_free_scores
from .modalities import get_modality
from .presets import preset_for
from .config import merge_options
from .run import Run, encode_storage, load
from .views import ViewRequest

#: the methods each modality's search screens beside the data's preset, with their defaults (methods that train
#: there in seconds to minutes on 2 CPU cores, one of each family that the benchmarks found to learn)
SEARCH_SPACES: dict[str, tuple[str, ...]] = {
    "image": ("simclr", "moco", "byol", "vicreg", "barlow_twins", "rotnet"),
    "timeseries": ("ts2vec", "simclr", "vicreg", "byol", "mae"),
    "tabular": ("scarf", "vime", "dae", "vicreg", "simclr"),
    "text": ("simcse", "declutr", "tsdae", "mlm"),
    "graph": ("graphcl", "infograph", "bgrl", "grace", "dgi", "graphmae"),
    "audio": ("cola", "byol_a", "cpc", "hubert_lite"),
    "points": ("simclr", "byol", "vicreg", "barlow_twins", "dino"),
    "video": ("simclr", "byol", "vicreg", "pace", "order_verification"),
}

KEEP = 3  # successive halving keeps the best 1/KEEP of a round
MIN_SCREEN_SECONDS = 2.0


@dataclass(frozen=True)
class Candidate:
    """One configuration the search may choose: a name and the TrainConfig options it sets."""

    name: str
    options: dict[str, Any]


def candidates_for(data: str, modality: str, options: dict[str, Any]) -> list[Candidate]:
    """The data's preset (if it has one) and the modality's search space, each on top of the caller's `options`."""
    if modality not in SEARCH_SPACES:
        raise ConfigError(f"--search has no search space for modality {modality!r}")
    preset = preset_for(data, {})
    found = [Candidate("preset", merge_options(preset.options, options))] if preset is not None else []
    return found + [Candidate(m, {**options, "method": m}) for m in SEARCH_SPACES[modality]]


def halving_rounds(n: int, keep: int = KEEP) -> list[int]:
    """How many candidates each round screens: n, ceil(n / keep), ... while more than one is left."""
    rounds = []
    while n > 1:
        rounds.append(n)
        n = math.ceil(n / keep)
    return rounds


@dataclass
class SearchState:
    """What a search has done so far: the scored screens ("round:name" -> record) and the decision, once made."""

    criterion: str
    budget_seconds: float
    fingerprint: str = ""  # the data, options and candidates searched: a state is carried on only by the same search
    screens: dict[str, dict[str, Any]] = field(default_factory=dict)
    round_seconds: list[float] = field(default_factory=list)  # each round's screen time, fixed when it starts
    rounds: list[dict[str, Any]] = field(default_factory=list)
    winner: str | None = None
    final_seconds: float | None = None
    spent_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"criterion": self.criterion, "budget_seconds": self.budget_seconds, "fingerprint": self.fingerprint,
                "screens": self.screens, "round_seconds": self.round_seconds, "rounds": self.rounds,
                "winner": self.winner, "final_seconds": self.final_seconds, "spent_seconds": self.spent_seconds}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> "SearchState":
        return cls(**doc)


def ranking_score(record: dict[str, Any], criterion: str) -> float:
    """A screen's score for ranking: a failed screen or a score that is not finite ranks last."""
    value = record.get("scores", {}).get(criterion)
    return value if value is not None and math.isfinite(value) else -math.inf


#: screen(candidate, round, seconds) -> the screen's record: {"scores": {criterion: value, ...}, ...}
Screen = Callable[[Candidate, int, float], dict[str, Any]]


def successive_halving(candidates: list[Candidate], state: SearchState, screen: Screen,
                       save: Callable[[SearchState], None] = lambda state: None,
                       clock: Callable[[], float] = time.monotonic, keep: int = KEEP) -> Candidate:
    """The winner of successive halving over `candidates`, ranked by `state.criterion` (larger is better).

    Half of `state.budget_seconds` goes to the screens. Each round's share is the screening time still unspent split
    over the rounds left; each candidate of a round gets an equal part of it, at least MIN_SCREEN_SECONDS, fixed when
    the round starts. Screens already in `state` (an interrupted search) are reused, not run again, and the rest of
    their round gets the same time; `save` is called after every screen. A screen that failed (its record holds
    "error") or scored no finite value ranks last.
    """
    if not candidates:
        raise ConfigError("--search: no candidate to screen")
    names = [c.name for c in candidates]
    if len(set(names)) != len(names):
        raise ConfigError(f"--search: candidate names repeat: {names}")
    plan = halving_rounds(len(candidates), keep)
    survivors = list(candidates)
    for r, _ in enumerate(plan):
        if len(state.round_seconds) <= r:
            left = max(state.budget_seconds / 2 - state.spent_seconds, 0.0)
            state.round_seconds.append(max(left / (len(plan) - r) / len(survivors), MIN_SCREEN_SECONDS))
        seconds = state.round_seconds[r]
        for c in survivors:
            key = f"{r}:{c.name}"
            if key not in state.screens:
                start = clock()
                state.screens[key] = {"candidate": c.name, "round": r, "seconds": seconds, **screen(c, r, seconds)}
                state.spent_seconds += clock() - start
                save(state)
        ranked = sorted(survivors, key=lambda c: -ranking_score(state.screens[f"{r}:{c.name}"], state.criterion))
        if ranking_score(state.screens[f"{r}:{ranked[0].name}"], state.criterion) == -math.inf:
            failures = "; ".join(f"{c.name}: {state.screens[f'{r}:{c.name}'].get('error', 'no finite score')}"
                                 for c in ranked)
            raise ConfigError(f"--search: no candidate could be trained and scored ({failures})")
        survivors = ranked[:math.ceil(len(ranked) / keep)]
        if len(state.rounds) <= r:
            state.rounds.append({"round": r, "ranking": [c.name for c in ranked],
                                 "kept": [c.name for c in survivors]})
            save(state)
    winner = survivors[0]
    if state.winner is None:
        state.winner = winner.name
        state.final_seconds = max(state.budget_seconds - state.spent_seconds, MIN_SCREEN_SECONDS)
        save(state)
    return winner


def sample_items(split: Split, n: int, seed: int) -> Split:
    """A fixed random sample of at most n items of a split, labels dropped (of a streamed split: of the sample it
    holds in memory)."""
    pick = torch.as_tensor(np.sort(np.random.default_rng(seed).choice(len(split), size=min(n, len(split)),
                                                                      replace=False)))
    return Split(split.x[pick], None, split.mask[pick] if split.mask is not None else None)


@torch.no_grad()
def score_run(run: Run, items: Split, views: int = 4, seed: int = 0,
              view_options: dict[str, Any] | None = None) -> dict[str, float]:
    """Every label-free criterion of a trained run on `items`: their embeddings, and the embeddings of `views`
    augmented views of each made by the modality's instance recipe (the same recipe whatever the method), under the
    modality's criterion view options (views that differ from their item) and then `view_options` (the data
    source's and the caller's augmentation options)."""
    z = encode_storage(run.encoder, run.modality, run.spec, items.x, mask=items.mask)
    storage = run.modality.storage(items, run.spec)
    make = run.modality.view_maker(ViewRequest("instance"), run.spec, 1.0,
                                   {**run.modality.criterion_view_options, **(view_options or {})})
    device = next(run.encoder.parameters()).device  # views are made where the encoder is, as training makes them
    batch = storage.to(device).take(torch.arange(len(storage)))
    run.encoder.eval()
    out = []
    for v in range(views):  # seeded on the CPU; a GPU's view maker draws from its own generator (as the monitor's)
        made = make(batch, torch.Generator().manual_seed(seed + 1 + v) if device.type == "cpu" else None)
        out.append(run.encoder(made.global_views[0]).float().cpu().numpy())
    return label_free_scores(z, np.stack(out, axis=1))


def scoring_view_options(dataset: Dataset, options: dict[str, Any]) -> dict[str, Any]:
    """The view options the criteria's views take: the data source's (e.g. no mirror images of digits) under the
    caller's own augmentation options, as training takes them."""
    return {**dataset.info.get("view_options", {}), **options.get("augmentation", {})}


def check_criterion(criterion: str) -> str:
    if criterion not in CRITERIA:
        raise ConfigError(f"--search-criterion: unknown criterion {criterion!r}; known: {', '.join(CRITERIA)}")
    return criterion


def search_directory(out: Path) -> Path:
    return out.with_name(out.name + ".search")


def load_state(folder: Path, criterion: str, budget_seconds: float, fingerprint: str) -> SearchState:
    """The search in progress in `folder` (it must be the same search: criterion, budget, data, options and
    candidates), or a new one."""
    path = folder / "search.json"
    if not path.exists():
        return SearchState(criterion, budget_seconds, fingerprint)
    try:
        state = SearchState.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError):
        raise ConfigError(f"{path}: not a search record of this version; remove {folder} to start again") from None
    if (state.criterion, state.budget_seconds, state.fingerprint) != (criterion, budget_seconds, fingerprint):
        raise ConfigError(f"{folder} holds another search (by {state.criterion} in {state.budget_seconds / 60:g} "
                          f"minutes, or of other data or options); give the same command (with --search-criterion "
                          f"{state.criterion}) to carry it on, or remove {folder}")
    return state


def why_chosen(state: SearchState) -> str:
    """One line: why the search chose its winner, and whether the criterion could tell the last round apart (when
    every candidate of it scored the same, the one listed first, the default, was kept)."""
    if not state.rounds:
        return f"{state.winner} was the only candidate"
    r = len(state.rounds) - 1
    scores = [ranking_score(state.screens[f"{r}:{name}"], state.criterion) for name in state.rounds[r]["ranking"]]
    if len(set(scores)) == 1:
        return (f"{state.winner}: every candidate of the last round scored the same {state.criterion} "
                f"({scores[0]:.4g}), so the criterion could not choose and the first listed was kept")
    return (f"{state.winner} had the highest {state.criterion} ({scores[0]:.4g}) in the last round of "
            f"{len(state.rounds)}")


def record(state: SearchState, candidates: list[Candidate]) -> dict[str, Any]:
    """The search as RUN/search.json keeps it: candidates and their options, every screen, the rounds, the choice."""
    why = why_chosen(state)
    return {"criterion": state.criterion, "budget_seconds": state.budget_seconds,
            "candidates": {c.name: c.options for c in candidates}, "screens": list(state.screens.values()),
            "rounds": state.rounds, "choice": state.winner, "why": why,
            "screen_seconds": round(state.spent_seconds, 1), "final_seconds": state.final_seconds,
            "over_budget": state.spent_seconds > state.budget_seconds / 2 + 1.0, "labels_used": False}


def search(cfg_options: dict[str, Any], dataset: Dataset, out: Path, minutes: float,
           train: Callable[[dict[str, Any], Path | None], Run], criterion: str | None = None,
           sample: int = 512, clock: Callable[[], float] = time.monotonic) -> tuple[dict[str, Any], dict[str, Any]]:
    """Screen the candidates for `dataset` and decide: (the winner's options with its final budget, the record).

    `train(options, folder)` trains one configuration (TrainConfig options) and returns its Run; the screens go
    into out.search/; the final training is the caller's (it writes `out`). Without `criterion`, the screens are
    ranked by the modality's (`Modality.search_criterion`).
    """
    folder = search_directory(out)
    found = candidates_for(cfg_options["data"], dataset.modality, cfg_options)
    fingerprint = json.dumps([[c.name, c.options] for c in found] + [sample], sort_keys=True, default=str)
    criterion = check_criterion(get_modality(dataset.modality).search_criterion if criterion is None else criterion)
    state = load_state(folder, criterion, minutes * 60, fingerprint)
    folder.mkdir(parents=True, exist_ok=True)
    seed = int(cfg_options.get("seed", 0))
    items = sample_items(dataset.train, sample, seed=seed)
    view_options = scoring_view_options(dataset, cfg_options)

    def screen(c: Candidate, r: int, seconds: float) -> dict[str, Any]:
        where = folder / f"round{r}-{c.name}"
        shutil.rmtree(where.with_name(where.name + ".partial"), ignore_errors=True)  # an interrupted screen restarts
        # no checkpoints: an interrupted screen starts again from scratch, so writing them would only take its time
        options = {**c.options, "minutes": seconds / 60, "monitor": False, "checkpoint_minutes": None,
                   "checkpoint_every_steps": None}
        options.pop("epochs", None)
        try:
            run = train(options, where)
            scores = score_run(run, items, seed=seed, view_options=view_options)
        except (SelfSupError, ValueError) as exc:  # a candidate that cannot train or be scored here ranks last
            return {"error": str(exc), "scores": {}}
        return {"scores": scores, "steps": run.summary["steps"], "epochs": run.summary["epochs"]}

    winner = successive_halving(found, state, screen, lambda s: write_json(folder / "search.json", s.to_dict()),
                                clock)
    final = {**winner.options, "minutes": state.final_seconds / 60}
    final.pop("epochs", None)
    return final, record(state, found)


def search_and_train(options: dict[str, Any], out: Path, minutes: float, criterion: str | None = None,
                     progress: bool = True, overwrite: bool = False) -> tuple[Run, dict[str, Any]]:
    """The whole `train --search`: screen the candidates for `options["data"]` within half of `minutes`, train the
    winner into `out` for the rest, keep the record in out/search.json; (the run, the record). `options` are the
    caller's TrainConfig options (the method and the budget are the search's; encoder options go to every candidate,
    and a candidate whose encoder refuses them ranks last)."""
    from .loading import load_dataset
    from .training import checkpoint as ckpt_io
    from .config import TrainConfig
    from .training.run_directory import staging_path
    from .training.session import resume, train

    if criterion is not None:
        check_criterion(criterion)
    chosen = [k for k in ("method", "encoder", "method_options", "epochs", "minutes")
              if options.get(k) not in (None, {})]
    if chosen:
        raise ConfigError(f"--search chooses the method and trains for its budget; drop {', '.join(chosen)}")
    if not minutes > 0:
        raise ConfigError(f"--search needs a budget in minutes > 0, got {minutes}")
    folder = search_directory(out)
    if (folder / "record.json").exists() and (out / "summary.json").exists() and not (out / "search.json").exists():
        return finish(out, json.loads((folder / "record.json").read_text()))  # stopped as it kept the record
    if out.exists() and not overwrite:
        raise ConfigError(f"{out} exists; choose another output or overwrite it")
    state_file = folder / "search.json"
    decided = state_file.exists() and json.loads(state_file.read_text()).get("winner") is not None
    resumable = ckpt_io.checkpoint_file(staging_path(out)).exists()
    if resumable and not decided and not overwrite:
        raise ConfigError(f"{staging_path(out)} holds an interrupted run that is not this search's; continue it with "
                          f"`selfsup train --resume {out}` or overwrite it")
    cfg = TrainConfig.from_dict({**options, "minutes": minutes}, "--search")
    dataset = load_dataset(cfg.data, cfg.data_dir, cfg.modality,
                           None if cfg.memory_budget is None else int(cfg.memory_budget * 1e9))

    def screen(candidate: dict[str, Any], folder: Path) -> Run:
        if progress:
            print(f"search: {candidate['method']} for {candidate['minutes'] * 60:.0f} s", file=sys.stderr)
        return train(TrainConfig.from_dict(candidate, "--search"), folder, progress=False, dataset=dataset,
                     overwrite=True)

    final, doc = search({**options, "data": cfg.data}, dataset, out, minutes, screen, criterion)
    write_json(folder / "record.json", doc)
    if progress:
        print(f"search: {doc['why']}; training it for {final['minutes'] * 60:.0f} s", file=sys.stderr)
        if doc["over_budget"]:
            print(f"search: the screens took {doc['screen_seconds']:.0f} s, more than half the budget "
                  f"({minutes * 30:.0f} s): too little time for {len(doc['candidates'])} candidates", file=sys.stderr)
    if decided and resumable:  # the search's final run was interrupted: carry it on
        resume(out, progress=progress, dataset=dataset)
    else:
        train(TrainConfig.from_dict(final, "--search"), out, progress=progress, dataset=dataset, overwrite=overwrite)
    return finish(out, doc)


def finish(out: Path, doc: dict[str, Any]) -> tuple[Run, dict[str, Any]]:
    """Keep the search's record in the finished run, remove the search's folder; (the run, the record)."""
    write_json(out / "search.json", doc)
    shutil.rmtree(search_directory(out), ignore_errors=True)
    return load(out), doc
