#!/usr/bin/env python
"""Screen a text configuration on validation data only, never on the STS or MR/CR test sets.

Trains METHOD on ENCODER for MINUTES on the pre-training sentences of benchmarks/text.py, then scores the frozen
embeddings on the validation task: the valence sign of the vaderSentiment tweets and NYT snippets (part of the
unlabeled pre-training text; their labels are used here only, never in training), by 5-fold cross-validated
accuracy of a standardised logistic regression (C = 1). How benchmarks/text.py's configuration was chosen:

    python benchmarks/text_screen.py simcse transformer 3 --baselines
    python benchmarks/text_screen.py simcse transformer 3 --encoder-option vectors=glove
    python benchmarks/text_screen.py simcse transformer 3 --encoder-option vectors=glove --cutoff 0.1
    python benchmarks/text_screen.py declutr transformer 3 --encoder-option vectors=glove
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import selfsup  # noqa: E402
from selfsup.run import build_encoder  # noqa: E402
from text import Embed, averaged_glove, encoder_embed  # noqa: E402
from text_data import labelled, pretraining_corpus, vader_files  # noqa: E402


def validation_accuracy(embed: Embed) -> dict[str, float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    files = vader_files()
    out = {}
    for name, file in (("tweets", "tweets_GroundTruth.txt"), ("nyt", "nytEditorialSnippets_GroundTruth.txt")):
        sentences, labels = labelled(files[file])
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=3000, solver="newton-cholesky"))
        out[name] = round(100 * float(cross_val_score(model, embed(sentences), np.asarray(labels), cv=5).mean()), 2)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("method")
    p.add_argument("encoder")
    p.add_argument("minutes", type=float)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--encoder-option", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--cutoff", type=float, default=0.0, help="span cutoff of the text views")
    p.add_argument("--baselines", action="store_true", help="also the untrained encoder and averaged GloVe")
    args = p.parse_args()
    torch.set_num_threads(2)
    corpus, _ = pretraining_corpus()
    run = selfsup.train(selfsup.api.dataset_from_array(corpus, modality="text", name="text-bench-corpus"),
                        method=args.method, encoder=args.encoder, minutes=args.minutes, batch_size=args.batch_size,
                        seed=0, monitor=False, encoder_options=dict(o.split("=", 1) for o in args.encoder_option),
                        augmentation={"cutoff": args.cutoff} if args.cutoff else {})
    s = run.summary
    print(f"{args.method} {args.encoder} {args.encoder_option} cutoff={args.cutoff}: {s['steps']} steps, "
          f"{s['samples_per_s']} sentences/s, final loss {s['final_loss']:.4f}")
    print(" trained", validation_accuracy(encoder_embed(run.encoder, run)))
    if args.baselines:
        print(" untrained", validation_accuracy(encoder_embed(build_encoder(run.resolved, seed=1000), run)))
        print(" averaged GloVe", validation_accuracy(averaged_glove))


if __name__ == "__main__":
    main()
