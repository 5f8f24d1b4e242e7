"""Text views: token ids [B, T] (0 = padding) made from a storage batch by the run's tokenizer.

Recipes (views.RECIPES names; what the views are, never a method):

- ``spans``: global view 0 a contiguous span of each text, its length a Beta(4, 2) fraction of the text's tokens (the
  anchor), the other global views spans of Beta(2, 4) fractions at independent random places, so they overlap the
  anchor, sit beside it or inside it (DeCLUTR, Giorgi et al. 2021: its anchors and positives, with lengths as
  fractions of the item where the paper samples 32-512 tokens of documents); deletion applies on top.
- ``masked_tokens``: BERT's masking (Devlin et al. 2019): `ratio` (0.15) of the real tokens chosen, 80% of those
  replaced by [MASK], 10% by a random token of the vocabulary (never a special one), 10% left as they are; the chosen
  positions in `corruption_mask`, the original ids in `clean`. At least one token of every text is chosen.
- ``instance``, ``instance_light``, ``asymmetric``: the same text in every global view, optionally with tokens deleted
  (`deletion`, the probability of deleting each token; default 0). With deletion 0 the views differ only by the
  encoder's dropout: unsupervised SimCSE's views (Gao et al. 2021 found dropout alone beat deletion, cropping and
  synonym replacement on STS-B), and what any generic method (SimCLR, BYOL, VICReg, ...) trains on for text.
  `--aug-strength` scales `deletion` and `cutoff`.

`cutoff` (every recipe but masked_tokens; default 0): span cutoff (Shen et al. 2020, "A Simple but Tough-to-Beat
Data Augmentation Approach", as ConSERT uses it): a contiguous span of that fraction of each view's tokens is
removed from attention and pooling (set to padding) while the other tokens keep their positions; deletion, by
contrast, closes the gap. At least one token of every text stays.

Multi-crop: local views are random contiguous spans of `local_size` of each text's tokens (at least one token), the
text counterpart of small crops.

Deletion keeps at least one token of every text (where all drew deletion, one of them chosen uniformly) and closes the
gaps (the kept tokens move left, in order), as the deletion noise of TSDAE (sentence-transformers' distribution of
kept tokens) and CLEAR. Randomness comes from the loop's generator, so a seed reproduces the views.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Callable

import torch

from ...errors import ConfigError
from ...views import ViewRequest, Views
from .codec import from_storage
from .tokenizer import PAD, encode, pad_ids, special_ids

#: DeCLUTR's span lengths as a fraction of the item: anchors ~ Beta(4, 2) (long), positives ~ Beta(2, 4) (short)
ANCHOR_BETA, POSITIVE_BETA = (4, 2), (2, 4)


@dataclass(frozen=True)
class TextAugmentation:
    deletion: float = 0.0  # probability of deleting each token
    cutoff: float = 0.0  # fraction of each text's tokens cut out as one span, positions kept

    @classmethod
    def from_options(cls, strength: float, options: dict[str, Any] | None) -> TextAugmentation:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options or {}) - known)
        if unknown:
            raise ConfigError(f"unknown text augmentation option(s) {', '.join(unknown)}; known: {', '.join(known)}")
        aug = cls(**(options or {}))
        for name in ("deletion", "cutoff"):
            if not 0.0 <= getattr(aug, name) < 1.0:
                raise ConfigError(f"text augmentation {name}={getattr(aug, name)} must be in [0, 1)")
        scale = max(0.0, strength)
        return cls(deletion=min(0.95, aug.deletion * scale), cutoff=min(0.95, aug.cutoff * scale))

    def __call__(self, ids: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return cut_span(delete_tokens(ids, self.deletion, generator), self.cutoff, generator)


def delete_tokens(ids: torch.Tensor, p: float, generator: torch.Generator | None) -> torch.Tensor:
    """Each real token deleted with probability `p`, the rest moved left in order; where every token of a text drew
    deletion, one of them, uniformly chosen, stays (sentence-transformers' TSDAE noise: the one whose draw was
    highest, uniform by symmetry, so no further random number is drawn)."""
    if p <= 0:
        return ids
    valid = ids != PAD
    dev = generator.device if generator is not None else ids.device
    draws = torch.rand(ids.shape, generator=generator, device=dev).to(ids.device)
    keep = valid & (draws >= p)
    survivor = draws.masked_fill(~valid, -1.0).argmax(dim=1, keepdim=True)
    keep.scatter_(1, survivor, keep.gather(1, survivor) | ~keep.any(dim=1, keepdim=True))  # never an empty text
    order = torch.sort((~keep).to(torch.int8), dim=1, stable=True).indices  # kept first, in their order
    moved = ids.gather(1, order)
    return moved.masked_fill(~keep.gather(1, order), PAD)


def cut_span(ids: torch.Tensor, fraction: float, generator: torch.Generator | None) -> torch.Tensor:
    """Span cutoff: a contiguous run of `fraction` of each text's real tokens (rounded; never all of them) set to
    padding in place, at a uniformly random start; the other tokens keep their positions."""
    if fraction <= 0:
        return ids
    lengths = (ids != PAD).sum(dim=1)
    span = torch.minimum((lengths.float() * fraction).round().long(), (lengths - 1).clamp(min=0))
    dev = generator.device if generator is not None else ids.device
    u = torch.rand(len(ids), generator=generator, device=dev).to(ids.device)
    start = (u * (lengths - span + 1).float()).long()
    steps = torch.arange(ids.shape[1], device=ids.device)[None]
    cut = (steps >= start[:, None]) & (steps < (start + span)[:, None])
    return ids.masked_fill(cut, PAD)


def random_spans(ids: torch.Tensor, fraction: float | torch.Tensor, generator: torch.Generator | None
                 ) -> torch.Tensor:
    """A contiguous span of each text, `fraction` (one, or one per text) of its real tokens long (at least one), at a
    uniformly random place, moved to the left."""
    lengths = (ids != PAD).sum(dim=1)
    span = (lengths.float() * fraction).round().long().clamp(min=1)
    span = torch.minimum(span, lengths.clamp(min=1))
    dev = generator.device if generator is not None else ids.device
    u = torch.rand(len(ids), generator=generator, device=dev).to(ids.device)
    start = (u * (lengths - span + 1).float()).long()
    steps = torch.arange(ids.shape[1], device=ids.device)
    positions = (start[:, None] + steps[None]).clamp(max=ids.shape[1] - 1)
    return ids.gather(1, positions).masked_fill(steps[None] >= span[:, None], PAD)


def beta_fractions(n: int, shape: tuple[int, int], generator: torch.Generator | None,
                   device: torch.device) -> torch.Tensor:
    """`n` draws of Beta(a, b) for whole a, b from the generator: the a-th smallest of a + b - 1 uniforms."""
    a, b = shape
    dev = generator.device if generator is not None else device
    u = torch.rand((n, a + b - 1), generator=generator, device=dev)
    return u.sort(dim=1).values[:, a - 1].to(device)


def mask_tokens(ids: torch.Tensor, ratio: float, mask_id: int, vocab_size: int, specials: list[int],
                generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(corrupted ids, chosen positions): BERT's 80/10/10 corruption of `ratio` of each text's real tokens."""
    real = ids != PAD
    for special in specials:
        real &= ids != special
    dev = generator.device if generator is not None else ids.device
    u = torch.rand((3, *ids.shape), generator=generator, device=dev).to(ids.device)
    chosen = real & (u[0] < ratio)
    first_real = real.int().argmax(dim=1)
    none = ~chosen.any(dim=1) & real.any(dim=1)  # every text with a real token gets at least one to predict
    chosen[none, first_real[none]] = True
    random_ids = torch.randint(0, vocab_size, ids.shape, generator=generator, device=dev).to(ids.device)
    allowed = torch.ones(vocab_size, dtype=torch.bool, device=ids.device)
    allowed[[PAD, *specials]] = False
    random_ids = torch.where(allowed[random_ids], random_ids, torch.full_like(ids, mask_id))
    out = torch.where(chosen & (u[1] < 0.8), torch.full_like(ids, mask_id), ids)
    out = torch.where(chosen & (u[1] >= 0.8) & (u[2] < 0.5), random_ids, out)
    return out, chosen


def masked_token_views(maker: "TextViewMaker", ids: torch.Tensor, generator: torch.Generator | None) -> Views:
    """`masked_tokens`: one BERT-corrupted copy of each text, the clean ids and the chosen positions beside it."""
    mask_id, specials = special_ids(maker.tokenizer)
    corrupted, chosen = mask_tokens(ids, float(maker.request.options.get("ratio", 0.15)), mask_id,
                                    maker.tokenizer["vocab_size"], specials, generator)
    return Views([corrupted], clean=ids, corruption_mask=chosen)


def span_views(maker: "TextViewMaker", ids: torch.Tensor, generator: torch.Generator | None) -> Views:
    """`spans` (DeCLUTR): a long anchor span, then shorter positive spans, each augmented."""
    return Views([maker.augmentation(random_spans(ids, beta_fractions(
        len(ids), ANCHOR_BETA if i == 0 else POSITIVE_BETA, generator, ids.device), generator), generator)
        for i in range(maker.request.global_views)])


def augmented_views(maker: "TextViewMaker", ids: torch.Tensor, generator: torch.Generator | None) -> Views:
    """The instance recipes: every global view is the whole text, augmented on its own."""
    return Views([maker.augmentation(ids, generator) for _ in range(maker.request.global_views)])


#: every text recipe's global views; all but masked_tokens also get local spans and the clean ids when asked
VIEW_MAKERS: dict[str, Callable[["TextViewMaker", torch.Tensor, torch.Generator | None], Views]] = {
    "instance": augmented_views, "instance_light": augmented_views, "asymmetric": augmented_views,
    "spans": span_views, "masked_tokens": masked_token_views}
RECIPES = tuple(VIEW_MAKERS)
WHOLE = ("masked_tokens",)  # recipes whose views are complete as made: one corrupted copy, no extras


class TextViewMaker:
    """Storage batch (uint8 UTF-8 rows) -> Views of token ids on the batch's device."""

    def __init__(self, request: ViewRequest, tokenizer: dict[str, Any], augmentation: TextAugmentation) -> None:
        self.request, self.tokenizer, self.augmentation = request, tokenizer, augmentation

    def __call__(self, batch: torch.Tensor, generator: torch.Generator | None = None) -> Views:
        ids = pad_ids(encode(from_storage(batch), self.tokenizer), batch.device)
        views = VIEW_MAKERS[self.request.recipe](self, ids, generator)
        if self.request.recipe in WHOLE:
            return views
        views.local_views = [self.augmentation(random_spans(ids, self.request.local_size, generator), generator)
                             for _ in range(self.request.local_views)]
        if self.request.clean:
            views.clean = ids
        return views


def text_view_maker(request: ViewRequest, tokenizer: dict[str, Any], strength: float,
                    options: dict[str, Any] | None) -> TextViewMaker:
    if request.recipe not in VIEW_MAKERS:
        raise ConfigError(f"view recipe {request.recipe!r} has no text version; known: {', '.join(RECIPES)}")
    if request.keep or (request.corruption_mask and request.recipe not in WHOLE):
        raise ConfigError(f"the {request.recipe!r} text views carry no token masks")
    if request.recipe in WHOLE:
        if request.global_views != 1 or request.local_views:
            raise ConfigError(f"{request.recipe} text views are one masked copy of each text (global_views=1)")
        return TextViewMaker(request, tokenizer, TextAugmentation.from_options(strength, options))
    # the method's recipe parameters (TSDAE's deletion ratio), then the caller's own
    return TextViewMaker(request, tokenizer, TextAugmentation.from_options(strength, {**request.options,
                                                                                     **(options or {})}))
