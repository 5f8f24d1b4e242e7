"""Does a label-free criterion choose the method as labels would? The evidence behind `selfsup train --search`.

For each benchmark (a data source of one modality) and seed, every candidate `--search` would screen
(selfsup.search.candidates_for: the data's preset and the modality's search space) trains for the same budget
(`--minutes`, from its initial weights, the seed's weights and views), with the labels held aside. Then, on the
training split only:
- every label-free criterion of selfsup.evaluation.criteria, computed as `--search` computes them (selfsup.search.
  score_run: 512 training items and 4 views each of the modality's instance recipe);
- the validation linear accuracy: 5-fold stratified cross-validation over the training items of the linear probe on
  the frozen embeddings (selfsup.evaluation.linear_probe, its C chosen inside each fold's training part).
Per benchmark and criterion: the Spearman correlation between the criterion and the validation accuracy over the
candidates (mean over seeds), the pick's validation accuracy against the label oracle's (the best candidate by
validation accuracy) and against the modality default's (the preset when the data have one, else the first method of
the search space), each a mean over seeds. The test split is never used.

A modality's figures are the means over its benchmarks: tables are breast_cancer, Satellite and Vehicle, series
five UCR problems (GunPoint, JapaneseVowels, ItalyPowerDemand, ArrowHead, BasicMotions; longer ones, such as
OSULeaf's 427 steps, are too long for half a minute on one core: some candidates would be compared nearly
untrained), graphs MUTAG and the generated motifs, images digits, audio spoken digits, text MR.

    python benchmarks/selection.py --benchmarks images,tables,series,graphs,graphs-motifs,series-vowels --minutes 0.5
    python benchmarks/selection.py --benchmarks tables-satellite,tables-vehicle --minutes 0.5 --threads 1
    python benchmarks/selection.py --benchmarks series-italypower,series-arrowhead,series-basicmotions --minutes 0.5 \
        --threads 1
    python benchmarks/selection.py --benchmarks audio,text --minutes 1 --seeds 0,1,2

Audio is the audio benchmark's data (benchmarks/audio_data.py: spoken digits synthesised with espeak-ng, generated
into ~/.cache/selfsup/spoken-digits when missing), its training speakers' clips with their digits; text is the MR
movie-review snippets of vaderSentiment (benchmarks/text_data.py), their polarity the label, every candidate's token
embeddings started from GloVe (`--encoder-option vectors=glove`, as the text guide recommends: from random token
embeddings a few minutes of training leave every method's embedding near collapse).

Results are merged into benchmarks/results/selection.json, one entry a benchmark (run benchmarks in stages, or in
processes of their own: the file is read again before each entry is written).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from scipy.stats import spearmanr
from sklearn.model_selection import StratifiedKFold

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, flat_options, machine, save  # noqa: E402
from audio import load_clips  # noqa: E402
from audio_data import DEFAULT_OUT as SPOKEN_DIGITS, generate  # noqa: E402
from text_data import transfer_sets  # noqa: E402

import selfsup  # noqa: E402
from selfsup.data import Dataset, Split  # noqa: E402
from selfsup.evaluation.criteria import CRITERIA  # noqa: E402
from selfsup.evaluation.linear import linear_probe  # noqa: E402
from selfsup.modalities import get_modality  # noqa: E402
from selfsup.run import encode_storage  # noqa: E402
from selfsup.search import candidates_for, sample_items, score_run, scoring_view_options  # noqa: E402

def spoken_digits() -> Dataset:
    """The audio benchmark's training speakers' clips (16 kHz, 1.5 s) with their digits."""
    if not (SPOKEN_DIGITS / "clips.csv").exists():
        generate(SPOKEN_DIGITS)
    x, rows, _ = load_clips(SPOKEN_DIGITS)
    train = np.array([r["split"] == "train" for r in rows])
    digits = np.array([int(r["digit"]) for r in rows])
    return Dataset("spoken-digits", "audio", Split(x[torch.from_numpy(train)], digits[train]))


def movie_reviews() -> Dataset:
    """MR: movie-review snippets labelled by polarity."""
    sentences, labels = transfer_sets()["MR"]
    return selfsup.api.dataset_from_array(sentences, labels, modality="text", name="MR")


#: benchmark name -> its data: a data source, or a function that builds the data set (one per modality at least)
BENCHMARKS: dict[str, str | Callable[[], Dataset]] = {
    "images": "digits", "tables": "sklearn:breast_cancer", "series": "ucr:GunPoint", "graphs": "tu:MUTAG",
    "images-fashion": "fashion-mnist", "graphs-motifs": "motifs", "audio": spoken_digits, "text": movie_reviews,
    "series-vowels": "ucr:JapaneseVowels", "tables-satellite": "mlbench:Satellite", "tables-vehicle": "mlbench:Vehicle",
    "series-italypower": "ucr:ItalyPowerDemand", "series-arrowhead": "ucr:ArrowHead",
    "series-basicmotions": "ucr:BasicMotions"}
#: the options a benchmark's user gives beside --search (`--encoder-option vectors=glove`: every candidate takes them)
OPTIONS: dict[str, dict[str, Any]] = {"text": {"encoder_options": {"vectors": "glove"}}}
NAME = "selection"


def load_benchmark(name: str) -> tuple[str, Dataset]:
    """A benchmark's data name (its source, or the built set's name) and its data set."""
    data = BENCHMARKS[name]
    if isinstance(data, str):
        return data, selfsup.load_dataset(data)
    ds = data()
    return ds.name, ds


def validation_accuracy(z: np.ndarray, y: np.ndarray, seed: int, folds: int = 5) -> float:
    """Mean linear-probe accuracy over stratified folds of the training items (C chosen inside each fold)."""
    split = StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y)
    return float(np.mean([linear_probe(z[a], y[a], z[b], y[b], seed=seed)["acc"] for a, b in split]))


def measure(data: str, ds: Dataset, options: dict[str, Any], minutes: float, seed: int,
            threads: int | None) -> dict[str, Any]:
    """Every candidate of `data` (its data set `ds`, the caller's `options`) trained for `minutes`, scored by every
    criterion and by validation accuracy."""
    items = sample_items(ds.train, 512, seed)
    y = np.asarray(ds.train.y)
    rows = {}
    for c in candidates_for(data, ds.modality, {**options, "data": data, "seed": seed}):
        start = time.perf_counter()
        run = selfsup.train(ds, **{k: v for k, v in c.options.items() if k != "data"}, minutes=minutes,
                            threads=threads, monitor=False)
        trained = time.perf_counter() - start
        z = encode_storage(run.encoder, run.modality, run.spec, ds.train.x, mask=ds.train.mask)
        rows[c.name] = {"method": c.options["method"], "train_seconds": round(trained, 1),
                        "steps": run.summary["steps"],
                        "scores": score_run(run, items, seed=seed, view_options=scoring_view_options(ds, {})),
                        "val_linear": round(validation_accuracy(z, y, seed), 4)}
        print(f"{data} seed {seed} {c.name}: val linear {rows[c.name]['val_linear']:.4f} "
              + " ".join(f"{k} {v:.4g}" for k, v in rows[c.name]["scores"].items()), flush=True)
    return rows


def analyse(per_seed: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per criterion: Spearman with validation accuracy, the pick's accuracy against the oracle's and the default's
    (means over seeds)."""
    out = {}
    for criterion in CRITERIA:
        rho, pick, oracle, default, picks = [], [], [], [], []
        for rows in per_seed.values():
            names = list(rows)
            acc = [rows[n]["val_linear"] for n in names]
            score = [rows[n]["scores"][criterion] for n in names]
            r = spearmanr(score, acc)[0]
            rho.append(0.0 if np.isnan(r) else float(r))
            chosen = names[int(np.argmax(score))]
            picks.append(chosen)
            pick.append(rows[chosen]["val_linear"])
            oracle.append(max(acc))
            default.append(rows[names[0]]["val_linear"])
        out[criterion] = {"spearman": round(float(np.mean(rho)), 3), "spearman_per_seed": [round(v, 3) for v in rho],
                          "pick_val_linear": round(float(np.mean(pick)), 4),
                          "oracle_val_linear": round(float(np.mean(oracle)), 4),
                          "default_val_linear": round(float(np.mean(default)), 4),
                          "regret_points": round(100 * float(np.mean(oracle) - np.mean(pick)), 2),
                          "vs_default_points": round(100 * float(np.mean(pick) - np.mean(default)), 2),
                          "picks": picks}
    return out


def separability(per_seed: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """Whether validation accuracy itself ranks the candidates the same way from seed to seed: the mean Spearman
    correlation between two seeds' validation accuracies over the candidates (a criterion's per-seed correlation
    with one seed's accuracies is held down by as much as the seeds disagree), beside the standard deviation over
    candidates of their mean accuracy and the mean over candidates of the standard deviation over seeds (points).
    None where fewer than 2 seeds or 2 candidates make a figure undefined."""
    names = list(next(iter(per_seed.values())))
    acc = 100 * np.array([[rows[n]["val_linear"] for n in names] for rows in per_seed.values()])  # seeds x candidates
    if acc.shape[0] < 2 or acc.shape[1] < 2:
        return {"seeds_agree": None, "candidates_points": None, "seeds_points": None}
    pairs = [spearmanr(acc[a], acc[b])[0] for a in range(len(acc)) for b in range(a + 1, len(acc))]
    return {"seeds_agree": round(float(np.mean([0.0 if np.isnan(r) else r for r in pairs])), 2),
            "candidates_points": round(float(acc.mean(0).std(ddof=1)), 2),
            "seeds_points": round(float(acc.std(0, ddof=1).mean()), 2)}


def by_modality(doc: dict[str, Any], criterion: str | None = None) -> dict[str, dict[str, Any]]:
    """Per modality, over its benchmarks (a modality's figure is the mean of its benchmarks': one small data set's
    labels rank close candidates differently from seed to seed): the Spearman correlation of `criterion` (None: the
    modality's own, the one `train --search` ranks by when told none) with validation accuracy, the pick's regret and
    its margin over the default (points), and the benchmarks it is the mean of."""
    order = list(BENCHMARKS)
    grouped: dict[str, list[str]] = {}
    for name in sorted(doc["benchmarks"], key=lambda n: order.index(n) if n in order else len(order)):
        grouped.setdefault(doc["benchmarks"][name]["modality"], []).append(name)
    out = {}
    for modality, names in grouped.items():
        chosen = criterion or get_modality(modality).search_criterion
        rows = [doc["benchmarks"][n]["criteria"][chosen] for n in names]
        out[modality] = {"criterion": chosen, "benchmarks": names,
                         **{key: round(float(np.mean([r[key] for r in rows])), 3 if key == "spearman" else 2) + 0.0
                            for key in ("spearman", "regret_points", "vs_default_points")}}
    return out


def markdown(doc: dict[str, Any]) -> str:
    """docs/benchmarks.md's table: per benchmark and criterion, the Spearman correlation with validation accuracy
    and the pick's validation accuracy beside the oracle's and the default's (means over seeds)."""
    lines = ["| benchmark (data, budget a candidate, seeds) | criterion | Spearman with validation linear | pick | "
             "label oracle | default | pick's regret (points) |", "|---|---|---|---|---|---|---|"]
    for name, b in doc["benchmarks"].items():
        given = "".join(f", {k}={v}" for k, v in flat_options(b.get("options", {})).items())
        where = f"{name} (`{b['data']}`{given}, {b['minutes']:g} min, seeds {', '.join(b['seeds'])})"
        default = get_modality(b["modality"]).search_criterion
        for criterion, a in b["criteria"].items():
            rho = f"{a['spearman']:.2f}"
            named = f"{criterion} (the search's)" if criterion == default else criterion
            lines.append(f"| {where} | {named} | {f'**{rho}**' if a['spearman'] >= 0.6 else rho} | "
                         f"{a['pick_val_linear']:.3f} | {a['oracle_val_linear']:.3f} | {a['default_val_linear']:.3f} | "
                         f"{a['regret_points']:.2f} |")
            where = ""
    lines += ["", "| modality (mean over its benchmarks) | the search's criterion | Spearman with validation linear | "
              "pick's regret (points) | pick against the default (points) |", "|---|---|---|---|---|"]
    for modality, m in by_modality(doc).items():
        rho = f"{m['spearman']:.2f}"
        lines.append(f"| {modality} ({', '.join(m['benchmarks'])}) | {m['criterion']} | "
                     f"{f'**{rho}**' if m['spearman'] >= 0.6 else rho} | {m['regret_points']:.2f} | "
                     f"{m['vs_default_points']:+.2f} |")
    lines += ["", "| benchmark | seeds agree (mean Spearman between two seeds' validation accuracies) | candidates "
              "apart (std of their mean validation accuracy, points) | one candidate's seeds apart (mean std, "
              "points) |", "|---|---|---|---|"]
    for name, b in doc["benchmarks"].items():
        cells = [" " if v is None else f"{v:.2f}" for v in separability(b["seeds"]).values()]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return "\n".join(lines)


def verdicts(rows: dict[str, dict[str, Any]]) -> tuple[list[str], list[str], list[str]]:
    """Of `rows` (name -> a criterion's figures): where it tracks validation accuracy (Spearman >= 0.6), where its
    pick is within a point of the label oracle's, and where the pick falls more than a point below the default."""
    return ([n for n, a in rows.items() if a["spearman"] >= 0.6],
            [n for n, a in rows.items() if a["regret_points"] <= 1.0],
            [n for n, a in rows.items() if a["vs_default_points"] < -1.0])


def summary(doc: dict[str, Any], criterion: str | None) -> str:
    """One sentence on a criterion over the benchmarks measured (None: on each benchmark its modality's, the one
    `train --search` ranks by when told none): how often it tracks validation accuracy, how often its pick is within
    a point of the oracle's, and the benchmarks where it fails."""
    if criterion is None:
        chosen = {name: get_modality(b["modality"]).search_criterion for name, b in doc["benchmarks"].items()}
        where = "; ".join(f"{c} on {', '.join(n for n in chosen if chosen[n] == c)}" for c in dict.fromkeys(
            chosen.values()))
        label = f"The search's own criterion ({where})"
    else:
        chosen = {name: criterion for name in doc["benchmarks"]}
        label = f"`{criterion}`"
    rows = {name: b["criteria"][chosen[name]] for name, b in doc["benchmarks"].items()}
    tracks, close, below = verdicts(rows)
    return (f"{label} tracks validation accuracy (Spearman >= 0.6) on {len(tracks)} of {len(rows)} benchmarks"
            f"{' (' + ', '.join(tracks) + ')' if tracks else ''}; its pick is within a point of the label oracle's "
            f"on {len(close)} of {len(rows)}; it fails on "
            f"{', '.join(n for n in rows if n not in tracks) or 'none'}"
            f"{'; its pick falls more than a point below the default on ' + ', '.join(below) if below else ''}.")


def modality_summary(doc: dict[str, Any]) -> str:
    """One sentence on the search's own criteria over modalities (a modality's figures the means over its
    benchmarks): where they track validation accuracy, where the pick is within a point of the oracle's, and where it
    falls more than a point below the default."""
    rows = by_modality(doc)
    tracks, close, below = verdicts(rows)
    return (f"Over modalities (each the mean over its benchmarks), the search's own criterion tracks validation "
            f"accuracy on {len(tracks)} of {len(rows)} ({', '.join(tracks) or 'none'}); its pick is within a point "
            f"of the label oracle's on {len(close)} of {len(rows)} ({', '.join(close) or 'none'}) and more than a "
            f"point below the default on {', '.join(below) or 'none'}.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmarks", default="images,tables,series,graphs")
    parser.add_argument("--minutes", type=float, default=0.5, help="training budget of every candidate")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    path = RESULTS / f"{NAME}.json"
    for name in args.benchmarks.split(","):
        data, ds = load_benchmark(name)
        options = OPTIONS.get(name, {})
        per_seed = {str(s): measure(data, ds, options, args.minutes, s, args.threads)
                    for s in map(int, args.seeds.split(","))}
        doc = json.loads(path.read_text()) if path.exists() else {"benchmarks": {}}  # read now: runs may share it
        doc["benchmarks"][name] = {"data": data, "modality": ds.modality, "options": options,
                                   "minutes": args.minutes, "seeds": per_seed,
                                   "criteria": analyse(per_seed), "machine": machine(),
                                   "command": "python benchmarks/selection.py " + " ".join(sys.argv[1:])}
        doc["protocol"] = __doc__.split("\n\n")[1].replace("\n", " ")
        save(NAME, doc)
        for criterion, a in doc["benchmarks"][name]["criteria"].items():
            print(f"{name} {criterion}: spearman {a['spearman']}, regret {a['regret_points']} points, "
                  f"vs default {a['vs_default_points']} points", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
