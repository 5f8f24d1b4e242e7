"""Random views against the published code's sampling, compared as distributions over many draws.

TS2Vec's crops: the official fit loop (the `ts2vec` package) run with its network replaced by a one-parameter
stand-in, its take_per_row recording each crop; two-sample Kolmogorov-Smirnov tests on the overlap length, the two
extensions and the first crop's start. TSDAE's deletion: sentence-transformers' DenoisingAutoEncoderDataset.delete
on whitespace-separated words (its NLTK tokenizer and detokenizer replaced by split and join: the tokenization is
not what is compared), a chi-square test on which words survive. Each has a negative control.
"""
import sys
import types

import numpy as np
import pytest
import torch
from scipy import stats

from _other import require
from selfsup.modalities.text.views import delete_tokens
from selfsup.modalities.sequences.augment import overlapping_crops

DRAWS = 10_000
LENGTH = 16  # steps of every series: short, so that an off-by-one in any bound moves the distributions visibly


def official_crops(temporal_unit=0, draws=DRAWS):
    """(overlap length, left extension, right extension, first crop's start) of `draws` iterations of the official
    TS2Vec.fit on 2 series of LENGTH steps."""
    module = require("ts2vec.ts2vec")
    recorded = []

    def take_per_row(x, start, length):
        recorded.append((np.asarray(start).copy(), int(length)))
        idx = torch.as_tensor(start)[:, None] + torch.arange(length)
        return x[torch.arange(x.shape[0])[:, None], idx]

    class Stand_in(torch.nn.Module):  # noqa: N801 - the network: one weight, no computation to speak of
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(()))

        def forward(self, x, mask=None):
            return x * self.w

    model = module.TS2Vec(input_dims=1, output_dims=4, hidden_dims=4, depth=1, device="cpu", batch_size=2,
                          temporal_unit=temporal_unit)
    model._net = Stand_in()
    model.net = types.SimpleNamespace(update_parameters=lambda net: None)
    original = module.take_per_row, module.hierarchical_contrastive_loss
    module.take_per_row = take_per_row
    module.hierarchical_contrastive_loss = lambda a, b, **kw: (a.sum() + b.sum()) * 0
    try:
        np.random.seed(0)
        torch.manual_seed(0)
        model.fit(np.arange(2 * LENGTH, dtype=np.float64).reshape(2, LENGTH, 1), n_iters=draws)
    finally:
        module.take_per_row, module.hierarchical_contrastive_loss = original
    first, second = recorded[0::2], recorded[1::2]
    out = []
    for (start1, len1), (start2, len2) in zip(first, second):
        left = int(start2[0] - start1[0])  # crop_left - crop_eleft, the same for every series
        overlap = len1 - left
        out.append((overlap, left, len2 - overlap, int(start1[0])))
    return np.array(out)


def selfsup_crops(min_length=2, length=LENGTH, draws=DRAWS):
    """The same four quantities from selfsup's overlapping_crops (series values = step index, so a crop's first value
    is its start)."""
    x = torch.arange(length, dtype=torch.float32).expand(2, 1, length).contiguous()
    generator = torch.Generator().manual_seed(0)
    out = []
    for _ in range(draws):
        views = overlapping_crops(x, generator, mask_p=0.0, min_length=min_length)
        ov = views.overlap
        first, second = views.global_views
        out.append((ov.length, ov.start_first, second.shape[-1] - ov.length, int(first[0, 0, 0])))
    return np.array(out)


@pytest.fixture(scope="module")
def crops():
    return official_crops(), selfsup_crops()


NAMES = ("overlap length", "left extension", "right extension", "first crop's start")


def test_ts2vec_crops_are_distributed_as_the_official_codes(crops):
    theirs, ours = crops
    assert theirs.shape == ours.shape == (DRAWS, 4)
    assert theirs[:, 0].min() == ours[:, 0].min() == 2 and theirs[:, 0].max() == ours[:, 0].max() == LENGTH
    for column, name in enumerate(NAMES):
        p = stats.ks_2samp(theirs[:, column], ours[:, column]).pvalue
        assert p > 0.01, f"{name}: p = {p:.2g}"


def test_ts2vec_crop_test_rejects_another_distribution(crops):
    """Negative controls: a minimum overlap of 4 steps (the official temporal_unit=1), and series one step shorter
    (an off-by-one in the upper bounds), are both told apart from the official crops."""
    theirs, _ = crops
    for other in (selfsup_crops(min_length=4), selfsup_crops(length=LENGTH - 1)):
        assert min(stats.ks_2samp(theirs[:, c], other[:, c]).pvalue for c in range(3)) < 1e-6


WORDS = 3  # short sentences: the rule for "every word deleted" (p = 0.6^3) shows in the distribution


def reference_deletions(ratio, draws=DRAWS):
    """Kept-word patterns (bit i = word i kept) of DenoisingAutoEncoderDataset.delete on 'w0 w1 w2'."""
    module = require("sentence_transformers.sentence_transformer.datasets.denoising_auto_encoder")
    nltk = types.ModuleType("nltk")
    nltk.word_tokenize = str.split
    treebank = types.ModuleType("nltk.tokenize.treebank")
    treebank.TreebankWordDetokenizer = lambda: types.SimpleNamespace(detokenize=" ".join)
    saved = {name: sys.modules.get(name) for name in ("nltk", "nltk.tokenize", "nltk.tokenize.treebank")}
    sys.modules.update({"nltk": nltk, "nltk.tokenize": types.ModuleType("nltk.tokenize"),
                        "nltk.tokenize.treebank": treebank})
    try:
        np.random.seed(1)
        sentence = " ".join(f"w{i}" for i in range(WORDS))
        kept = [module.DenoisingAutoEncoderDataset.delete(sentence, ratio).split() for _ in range(draws)]
    finally:
        for name, value in saved.items():
            sys.modules.pop(name) if value is None else sys.modules.__setitem__(name, value)
    return np.array([sum(1 << int(w[1:]) for w in words) for words in kept])


def selfsup_deletions(ratio, draws=DRAWS):
    """The same patterns from selfsup's delete_tokens on texts of WORDS tokens (ids 1..WORDS, padded to 5)."""
    ids = torch.zeros(draws, WORDS + 2, dtype=torch.long)
    ids[:, :WORDS] = torch.arange(1, WORDS + 1)
    out = delete_tokens(ids, ratio, torch.Generator().manual_seed(1))
    bits = torch.zeros(draws, dtype=torch.long)
    for token in range(1, WORDS + 1):
        bits |= (out == token).any(dim=1).long() << (token - 1)
    assert torch.equal((out != 0).sum(1), torch.tensor([bin(int(b)).count("1") for b in bits]))  # no duplicates
    return bits.numpy()


def same_distribution_p(a, b):
    patterns = sorted(set(a) | set(b))
    table = np.array([[np.sum(a == k) for k in patterns], [np.sum(b == k) for k in patterns]])
    return stats.chi2_contingency(table).pvalue


def test_tsdae_deletion_is_distributed_as_sentence_transformers():
    """Each word kept with probability 0.4, independently; when none is kept, one word chosen uniformly: the
    7 patterns of kept words of a 3-word sentence have the reference's frequencies."""
    theirs, ours = reference_deletions(0.6), selfsup_deletions(0.6)
    assert 0 not in set(theirs) | set(ours)
    p = same_distribution_p(theirs, ours)
    assert p > 0.01, f"p = {p:.2g}"


def test_tsdae_deletion_test_rejects_another_ratio():
    assert same_distribution_p(reference_deletions(0.6), selfsup_deletions(0.5)) < 1e-6
