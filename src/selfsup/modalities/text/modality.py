"""The text modality: items of text (sentences, paragraphs, documents) as UTF-8 bytes in storage (`codec`), a
WordPiece tokenizer trained on the training text and kept in the run's input spec (`tokenizer`), token-id views
(`views`) and encoders over token ids (`encoders`).

The input spec (`fit_spec`) holds the tokenizer, so `embed`, `eval` and a resumed run tokenise new text exactly as
training did. `prepare` turns a storage batch into int64 token ids [B, T] padded with 0 to the batch's longest item.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ...data import Dataset, Split
from ...encoders import VocabularyEncoder
from ...errors import DataError
from ...storage import Storage
from ...views import ViewRequest
from ..base import Modality, ViewMaker, modalities
from ..exporting import ExportInputs
from ...html_parts import human, table
from ..presentation import Neighbours, Presentation
from .codec import TextPolicy, from_storage, to_storage
from .encoders import text_encoders
from .storage import LengthGroupedStorage, item_lengths, token_counts
from .tokenizer import PAD, encode, hf_tokenizer_spec, pad_ids, train_tokenizer
from .views import RECIPES, text_view_maker

#: at most this many training items train the tokenizer (evenly spaced): enough for a stable vocabulary
TOKENIZER_SAMPLE = 200_000
RAW_WIDTH = 8192  # columns of the bag-of-tokens baseline
TOY_WORDS = ("a man woman child dog cat plays reads eats runs sleeps guitar book apple ball park house quickly "
             "slowly the small big red green happy sad").split()


class TextPresentation(Presentation):
    """How text samples appear in a report."""

    neighbour_queries, neighbours_per_query = 6, 4

    def captions(self, x: torch.Tensor) -> list[str]:
        return from_storage(x)

    def render_neighbours(self, x: torch.Tensor, neighbours: Neighbours) -> list[str]:
        """A table: each query text beside its nearest texts and their similarities."""
        rows = []
        for row, sims in zip(neighbours.rows, neighbours.sims):
            texts = self.captions(x[row])
            rows.append([texts[0][:200]] + [f"{t[:200]} ({s:.2f})" for t, s in zip(texts[1:], sims[1:])])
        k = len(neighbours.rows[0]) - 1
        head = (f"<h2>Nearest neighbours</h2><p>{len(rows)} items of {human(neighbours.sample)} and their {k} nearest "
                "by cosine similarity of the embeddings.</p>")
        return [head, table(rows, ["item"] + [f"neighbour {i + 1}" for i in range(k)])]


class TextExportInputs(ExportInputs):
    """Example storage and the prepared input in words, for exporting a text encoder."""

    def described(self, spec: dict[str, Any]) -> str | None:
        tok = spec["tokenizer"]
        if tok["kind"] == "hf":
            return (f"int64 token ids [batch, tokens] of hf:{tok['model']}'s own tokenizer plus one (0 = padding after "
                    f"each item), with its special tokens, at most {tok['max_tokens']} tokens an item")
        return (f"int64 token ids [batch, tokens] from the run's WordPiece tokenizer ({tok['vocab_size']} tokens, "
                f"lower-cased, at most {tok['max_tokens']} tokens an item), padded with {PAD} after each item")


class TextModality(Modality):
    """Sentences or documents; a list of strings, a text file (one item a line) or a column of a table."""

    name = "text"
    presentation = TextPresentation()
    summary = "text items (UTF-8 bytes in memory; WordPiece tokens trained on the data, kept in the run)"
    encoders = text_encoders
    export_inputs = TextExportInputs()
    view_recipes = RECIPES
    encoder_kind = VocabularyEncoder
    default_array_ranks = (1,)
    # instance views of text are the text itself unless tokens are dropped: a tenth of them, as views for criteria
    criterion_view_options = {"deletion": 0.1}

    def from_array(self, x: Any, where: str) -> torch.Tensor:
        if isinstance(x, str):
            raise DataError(f"{where}: a single string; pass a list of texts")
        if isinstance(x, np.ndarray) and x.dtype.kind not in "UO":
            raise DataError(f"{where}: a {x.ndim}-D array of {x.dtype} is not text (expected strings); "
                            "pass modality= for other data")
        items = list(x)
        return to_storage(items, where, TextPolicy())

    def to_storage(self, x: Any, where: str, spec: dict[str, Any]) -> torch.Tensor:
        """Strings (one or many) -> storage; uint8 [N, L] storage as it is."""
        if isinstance(x, torch.Tensor):
            if x.dtype == torch.uint8 and x.dim() == 2:
                return x
            x = x.numpy()
        return self.from_array([x] if isinstance(x, str) else x, where)

    def storage(self, split: Split, spec: dict[str, Any]) -> Storage:
        """Text in memory trains in batches of similar token counts (storage.py); a split streamed or read from a
        prepared file keeps the default."""
        if split.mask is None and split.stream is None and split.rows is None:
            return LengthGroupedStorage(split.x, token_counts(split.x, spec["tokenizer"]))
        return super().storage(split, spec)

    def fit_spec(self, x: torch.Tensor) -> dict[str, Any]:
        rows = torch.linspace(0, len(x) - 1, steps=min(len(x), TOKENIZER_SAMPLE)).round().long().unique()
        texts = from_storage(x[rows])
        tokenizer = train_tokenizer(texts)
        lengths = [len(ids) for ids in encode(texts[:2000], tokenizer)]
        return {"items": int(len(x)), "tokenizer": tokenizer, "tokenizer_trained_on": int(len(rows)),
                "median_tokens": float(np.median(lengths)),
                "longer_than_max_tokens": float(np.mean([n >= tokenizer["max_tokens"] for n in lengths]))}

    def default_encoder(self, spec: dict[str, Any]) -> str:
        return "transformer"

    def spec_for_encoder(self, spec: dict[str, Any], encoder: str, options: dict[str, Any]) -> dict[str, Any]:
        """A pretrained (`hf:`) encoder reads its own tokenizer's ids; the others the vocabulary learned here."""
        if encoder != "hf" or not options.get("name"):
            return spec
        return {**spec, "tokenizer": hf_tokenizer_spec(options["name"], 128)}

    def view_maker(self, request: ViewRequest, spec: dict[str, Any], strength: float = 1.0,
                   options: dict[str, Any] | None = None) -> ViewMaker:
        return text_view_maker(request, spec["tokenizer"], strength, options)

    def prepare(self, x: torch.Tensor, spec: dict[str, Any]) -> torch.Tensor:
        return pad_ids(encode(from_storage(x), spec["tokenizer"]), x.device)

    def encoding_order(self, x: torch.Tensor) -> torch.Tensor:
        """Shortest first: each embedding batch is padded to about its own length."""
        return torch.sort(item_lengths(x), stable=True).indices

    def toy_data(self, n: int, generator: np.random.Generator) -> list[str]:
        """Sentences of 3-12 random words from a small vocabulary."""
        return [" ".join(generator.choice(TOY_WORDS, size=int(generator.integers(3, 13)))) for _ in range(n)]

    def raw_features(self, x: torch.Tensor, spec: dict[str, Any], mask: torch.Tensor | None = None) -> np.ndarray:
        """The raw-input baseline for text: each item's bag of tokens (log(1 + count) per token id; ids beyond
        RAW_WIDTH, in a pretrained tokenizer's larger vocabulary, share columns modulo it), L2-normalised."""
        ids = encode(from_storage(x), spec["tokenizer"])
        out = np.zeros((len(ids), min(RAW_WIDTH, spec["tokenizer"]["vocab_size"])), dtype=np.float32)
        for row, item in enumerate(ids):
            np.add.at(out[row], np.asarray(item) % out.shape[1], 1.0)
        out = np.log1p(out)
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def dataset_from_arrays(self, x: Any, y: np.ndarray | None, name: str) -> Dataset:
        return Dataset(name, self.name, Split(self.from_array(x, name), y))


modalities.add("text", TextModality(), TextModality.summary)
