"""Tokenisation with the Hugging Face `tokenizers` library: a WordPiece vocabulary learned from the run's own
unlabeled text (`learn_vocabulary`; BERT's normalisation and pre-tokenisation: lower case, accents stripped, words and
punctuation split; greedy longest-match WordPiece splitting),
stored in the run's input spec as its ordered token list, so `embed` applies exactly the same tokenizer.

Token ids: 0 is [PAD] (every batch is padded with it to its longest item; encoders read `ids != PAD` as the padding
mask), 1 [UNK], 2 [CLS], 3 [SEP], 4 [MASK]; no special token is added to an item (mean pooling needs none). Items
longer than `max_tokens` are cut there.

A pretrained encoder's tokenizer (`hf_tokenizer_spec`: the `tokenizer.json` of a Hugging Face model folder) is used as
the model was trained, special tokens ([CLS] ... [SEP]) included, with its ids shifted up by one so that 0 stays
padding for views and encoders alike (the `hf:` encoder shifts them back).
"""
from __future__ import annotations

import functools
import hashlib
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import torch

from ...errors import ConfigError

PAD, UNK, CLS, SEP, MASK = range(5)
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
#: vocabulary size and token limit of a trained tokenizer unless the caller says otherwise
DEFAULT_VOCAB_SIZE = 8192
DEFAULT_MAX_TOKENS = 64


def _tokenizers():
    try:
        import tokenizers
    except ImportError:
        raise ConfigError("text needs the `tokenizers` package: pip install 'selfsup[text]'") from None
    return tokenizers


def _pipeline(model: Any) -> Any:
    tk = _tokenizers()
    tokenizer = tk.Tokenizer(model)
    tokenizer.normalizer = tk.normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                         strip_accents=True, lowercase=True)
    tokenizer.pre_tokenizer = tk.pre_tokenizers.BertPreTokenizer()
    return tokenizer


def learn_vocabulary(texts: Sequence[str], vocab_size: int) -> list[str]:
    """A WordPiece vocabulary learned from word counts, deterministically (the `tokenizers` trainers break ties in
    an order that changes from process to process, and a run must be reproducible from its seed): the special
    tokens, every character seen (word-initial and `##` continuation), then, ranked by count (ties by the string), the
    words seen at least twice in three quarters of the remaining places and, in the rest, the most frequent word
    beginnings and `##` endings of the other words (so that rare words split into pieces rather than letters)."""
    tk = _tokenizers()
    normalizer = tk.normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=True,
                                               lowercase=True)
    pre = tk.pre_tokenizers.BertPreTokenizer()
    counts: Counter[str] = Counter(w for text in texts for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(text)))
    chars: set[str] = set()
    for word in counts:  # every character both ways: a word never becomes [UNK] for where a letter stands
        chars.update(word)
        chars.update("##" + ch for ch in word)
    base = SPECIAL_TOKENS + sorted(chars)
    slots = max(0, vocab_size - len(base))
    by_count = sorted((w for w, c in counts.items() if c >= 2 and len(w) > 1), key=lambda w: (-counts[w], w))
    words = by_count[:(3 * slots) // 4]
    chosen = set(words)
    pieces: Counter[str] = Counter()
    for word, c in counts.items():
        if word not in chosen and len(word) > 2:
            pieces.update({word[:i]: c for i in range(2, len(word))})
            pieces.update({"##" + word[i:]: c for i in range(1, len(word) - 1)})
    ranked_pieces = sorted((p for p, c in pieces.items() if c >= 2 and p not in chosen), key=lambda p: (-pieces[p], p))
    extra = ranked_pieces[:slots - len(words)]
    words += [w for w in by_count[len(words):] if w not in set(extra)][:slots - len(words) - len(extra)]
    return base + words + extra


def train_tokenizer(texts: Sequence[str], vocab_size: int = DEFAULT_VOCAB_SIZE,
                    max_tokens: int = DEFAULT_MAX_TOKENS) -> dict[str, Any]:
    """The spec entry of a WordPiece tokenizer whose vocabulary is learned from `texts` (`learn_vocabulary`)."""
    if vocab_size < len(SPECIAL_TOKENS) + 32:
        raise ConfigError(f"vocab_size={vocab_size} is too small for a WordPiece vocabulary (at least 37)")
    if max_tokens < 1:
        raise ConfigError(f"max_tokens must be at least 1, got {max_tokens}")
    return tokenizer_spec(learn_vocabulary(texts, vocab_size), max_tokens)


def tokenizer_spec(tokens: list[str], max_tokens: int) -> dict[str, Any]:
    """The spec entry of a WordPiece vocabulary (`tokens` in id order, the special tokens first)."""
    if tokens[:len(SPECIAL_TOKENS)] != SPECIAL_TOKENS:
        raise ConfigError(f"a text vocabulary must start with {SPECIAL_TOKENS}, got {tokens[:len(SPECIAL_TOKENS)]}")
    digest = hashlib.blake2b("\n".join(tokens).encode(), digest_size=8).hexdigest()
    return {"kind": "wordpiece", "lowercase": True, "max_tokens": int(max_tokens), "vocab_size": len(tokens),
            "digest": digest, "tokens": list(tokens)}


def hf_tokenizer_file(model: str) -> Path:
    """The tokenizer.json of a Hugging Face model folder (or of a hub model already in the local cache)."""
    folder = Path(model).expanduser()
    if not folder.is_dir():
        try:
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(model, allow_patterns=["tokenizer.json"]))
        except Exception as exc:  # offline, unknown model, no huggingface_hub
            raise ConfigError(f"hf:{model}: not a model folder, and the hub cannot give it ({type(exc).__name__})") \
                from None
    path = folder / "tokenizer.json"
    if not path.is_file():
        raise ConfigError(f"hf:{model}: no tokenizer.json in {folder} (a fast tokenizer is needed)")
    return path


def hf_tokenizer_spec(model: str, max_tokens: int) -> dict[str, Any]:
    """The spec entry of a pretrained model's own tokenizer (read from its folder when used)."""
    path = hf_tokenizer_file(model)
    tokenizer = _tokenizers().Tokenizer.from_file(str(path))
    digest = hashlib.blake2b(path.read_bytes(), digest_size=8).hexdigest()
    return {"kind": "hf", "model": str(model), "max_tokens": int(max_tokens),
            "vocab_size": tokenizer.get_vocab_size() + 1, "digest": digest}


@functools.lru_cache(maxsize=8)
def _built(digest: str, tokens: tuple[str, ...]) -> Any:
    tk = _tokenizers()
    return _pipeline(tk.models.WordPiece(vocab={t: i for i, t in enumerate(tokens)}, unk_token="[UNK]"))


@functools.lru_cache(maxsize=4)
def _pretrained(model: str, digest: str) -> Any:
    path = hf_tokenizer_file(model)
    if hashlib.blake2b(path.read_bytes(), digest_size=8).hexdigest() != digest:
        raise ConfigError(f"hf:{model}: its tokenizer.json changed since the run was trained")
    tokenizer = _tokenizers().Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def build_tokenizer(spec: dict[str, Any]) -> Any:
    """The `tokenizers.Tokenizer` a spec entry describes (built once per vocabulary)."""
    if spec["kind"] == "hf":
        return _pretrained(spec["model"], spec["digest"])
    return _built(spec["digest"], tuple(spec["tokens"]))


def encode(texts: Sequence[str], spec: dict[str, Any]) -> list[list[int]]:
    """Token ids of each text, cut at the spec's `max_tokens`; an item with no token becomes [UNK]. A pretrained
    tokenizer's ids come shifted up by one (0 = padding), with its special tokens, the last one kept when cut."""
    limit = spec["max_tokens"]
    if spec["kind"] == "hf":
        encodings = build_tokenizer(spec).encode_batch(list(texts), add_special_tokens=True)
        return [[i + 1 for i in (e.ids if len(e.ids) <= limit else e.ids[:limit - 1] + e.ids[-1:])]
                for e in encodings]
    encodings = build_tokenizer(spec).encode_batch(list(texts), add_special_tokens=False)
    return [e.ids[:limit] or [UNK] for e in encodings]


def pad_ids(ids: list[list[int]], device: torch.device | str | None = None) -> torch.Tensor:
    """int64 [B, longest] with PAD after each item."""
    longest = max((len(i) for i in ids), default=1)
    out = torch.full((len(ids), longest), PAD, dtype=torch.long)
    for row, item in enumerate(ids):
        out[row, :len(item)] = torch.tensor(item, dtype=torch.long)
    return out.to(device) if device is not None else out


def special_ids(spec: dict[str, Any]) -> tuple[int, list[int]]:
    """(the mask id, every special id) in the modality's ids (a pretrained tokenizer's shifted by one)."""
    if spec["kind"] != "hf":
        return MASK, list(range(len(SPECIAL_TOKENS)))
    return _pretrained_specials(spec["model"], spec["digest"])


@functools.lru_cache(maxsize=4)
def _pretrained_specials(model: str, digest: str) -> tuple[int, list[int]]:
    tokenizer = _pretrained(model, digest)
    added = {token.content: i for i, token in tokenizer.get_added_tokens_decoder().items() if token.special}
    mask = next((added[t] for t in ("[MASK]", "<mask>") if t in added), None)
    if mask is None:
        raise ConfigError(f"hf:{model}: its tokenizer has no mask token ([MASK] or <mask>)")
    return mask + 1, sorted(i + 1 for i in added.values())


def decode(ids: torch.Tensor, spec: dict[str, Any]) -> list[str]:
    """Token ids [B, T] back to text (padding dropped; WordPiece continuations joined)."""
    tokenizer = build_tokenizer(spec)
    shift = 1 if spec["kind"] == "hf" else 0
    return [tokenizer.decode([int(i) - shift for i in row if i != PAD]) for row in ids.tolist()]
