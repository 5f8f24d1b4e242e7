"""Encoder protocols, declared by base classes rather than probed with `hasattr`.

- `Encoder`: ``forward(x) -> [B, out_dim]``, one vector per sample. `input_width` is how many values one
  input position holds when the input is a vector or a sequence of vectors (a prepared table row's width,
  a series' channels), None otherwise (images); reconstruction heads are sized by it.
- `SequenceEncoder`: an Encoder that also gives one vector per step or token,
  ``forward_sequence(x, step_mask=None) -> [B, T, out_dim]``; `step_mask` [B, T] bool (False = hide that
  step's input) is applied inside the encoder, after the input projection (TS2Vec's timestamp masking;
  masked image modelling will hide patches the same way).
- `TokenEncoder`: an Encoder over patch tokens that really drops the hidden ones (masked modelling: MAE, I-JEPA):
  ``tokens(x, keep=None) -> [B, K, token_dim]`` are the outputs of the kept patches only (hidden patches never
  enter the transformer), ``patches(x)`` cuts the input into the patches the tokens stand for, and
  ``position_table(x, width)`` gives the fixed position code of x's tokens at another width (for decoders and
  predictors, which thereby need not know whether the tokens lie on a grid or a line), and
  ``layer_outputs(x)`` every block's output for all tokens (data2vec's targets are the average of the top ones).
  Unobserved input values (a series' padding and missing values) are NaN in ``patches``.

- `FrameEncoder`: a SequenceEncoder whose steps each have an output of their own, computed by the same network at
  every step (convolutions without pooling in time): no step shares its vector with a neighbour, so predicting a
  later step's output is never copying an earlier one (CPC's future prediction needs this; a CNN that pools time or
  a Transformer over patches repeats one vector for several steps). Steps past the end of a sample (padding) come
  out as exact zeros, so a loss can leave them out.

- `VocabularyEncoder`: a SequenceEncoder over discrete ids (int64 [B, T], 0 = padding) from a vocabulary of
  `vocab_size` ids: a method that predicts ids (TSDAE's decoder, masked language modelling) sizes its output by it.

- `GraphEncoder`: an Encoder over batches of graphs that also gives one vector per node,
  ``node_outputs(x, hide=None) -> NodeOutputs`` (every node of the batch, graph after graph, with the sample each
  belongs to, the message-passing edges between them and their input features), and ``readout(nodes) -> [B,
  out_dim]``, the sample's vector (pooled over its nodes, or its root node's for rooted neighbourhoods); `forward(x)`
  is ``readout(node_outputs(x))``. `hide` [M] bool replaces those nodes' input features by `mask_token` [input_width]
  (the caller's learned token; zeros without one) before the first layer (masked feature modelling: GraphMAE). Node-level losses (GRACE, DGI, InfoGraph) read these without
  knowing how graphs are stored.

A method states which kind it needs (`Method.encoder_kind`); the trainer checks it with `isinstance`
before building the method and names the encoders that qualify when it does not hold.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn


@dataclass(frozen=True)
class FineTuning:
    """How an architecture is fine-tuned whole on labels (selfsup.finetune), declared by its encoder class:
    convolutional networks with batch norm take SGD (SimCLRv2's protocol), Transformers AdamW with a warm-up and
    layer-wise learning-rate decay (MAE's fine-tuning recipe, He et al. 2022, appendix A.3: 0.75 for ViT-L, 0.65
    for ViT-B; 0.75 here for the 12 narrow blocks of ViT-Tiny). Learning rates are for the protocol's batch of 64;
    the protocol also tries a third and three times the rate, chosen on validation."""

    optimizer: str = "sgd"  # "sgd" (Nesterov momentum 0.9) or "adamw" (betas 0.9, 0.999)
    lr: float = 0.05
    weight_decay: float = 5e-4
    warmup: float = 0.0  # fraction of the steps with a linear warm-up before the cosine decay
    layer_decay: float = 1.0  # a parameter at depth d of D (Encoder.parameter_depths) trains at lr x decay^(D - d)
    view_strength: float = 0.5  # strength of the instance views during fine-tuning (0: the inputs as they are)
    max_steps: int = 1000  # the protocol trains 30 passes over the labelled rows, at least 100 and at most this


class Encoder(nn.Module):
    """Maps a batch to [B, out_dim] features; subclasses set `out_dim` (and `input_width` where it applies)."""

    out_dim: int
    input_width: int | None = None
    fine_tuning: ClassVar[FineTuning] = FineTuning()

    def forward(self, x: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        raise NotImplementedError

    def parameter_depths(self) -> tuple[dict[str, int], int]:
        """(depth of every named parameter, the largest depth), for layer-wise learning-rate decay: 0 is the input
        end. Default: every parameter at depth 0 of 0 (one rate for the whole encoder)."""
        return {name: 0 for name, _ in self.named_parameters()}, 0


class SequenceEncoder(Encoder):
    """An Encoder with per-step (per-token) outputs and an input step mask it applies itself."""

    def forward_sequence(self, x: torch.Tensor, step_mask: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError


class FrameEncoder(SequenceEncoder):
    """A SequenceEncoder with a distinct output at every step (no pooling in time)."""


class VocabularyEncoder(SequenceEncoder):
    """A SequenceEncoder whose inputs are ids from a vocabulary (0 = padding; the model never predicts it)."""

    vocab_size: int


class TokenEncoder(Encoder):
    """An Encoder over patch tokens; `forward(x)` is the mean of all tokens' outputs [B, out_dim] (evaluation)."""

    fine_tuning: ClassVar[FineTuning] = FineTuning("adamw", lr=5e-4, weight_decay=0.05, warmup=0.1, layer_decay=0.75)
    token_dim: int  # width of one token's output
    patch_dim: int  # values in one patch of the input (what `patches` cuts; a reconstruction target's width)
    layer_dim: int  # width of one block's output (`layer_outputs`)

    def token_count(self, x: torch.Tensor) -> int:
        """How many tokens (patches) input `x` makes."""
        raise NotImplementedError

    def token_grid(self, x: torch.Tensor) -> tuple[int, ...]:
        """How x's tokens are arranged, in token order: (rows, columns) for an image, (steps,) for a series
        (block masks are drawn on it)."""
        raise NotImplementedError

    def tokens(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """[B, K, token_dim]: the kept tokens' outputs in token order, after the final norm. `keep` [B, T] bool holds
        the same number K of True in every row (None: all T tokens)."""
        raise NotImplementedError

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, patch_dim]: the input cut into the tokens' patches; NaN where a value was not observed."""
        raise NotImplementedError

    def unpatch(self, patches: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The inverse of `patches`: [B, T, patch_dim] values laid back out in x's shape."""
        raise NotImplementedError

    def layer_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every block's output [B, T, layer_dim] for all T tokens, first block first (the residual stream, before
        any final norm)."""
        raise NotImplementedError

    def position_table(self, x: torch.Tensor, width: int) -> torch.Tensor:
        """[T, width]: the fixed position code of x's tokens, at `width`."""
        raise NotImplementedError


@dataclass(frozen=True)
class NodeOutputs:
    """Per-node outputs of a batch of B graphs: M nodes in all, in the order of their graphs."""

    features: torch.Tensor  # [M, node_dim]
    owner: torch.Tensor  # int64 [M]: the sample (0..B-1) each node belongs to, non-decreasing
    count: int  # B, the samples of the batch (a graph may have no node left after an augmentation)
    edges: torch.Tensor  # int64 [2, E]: directed message-passing edges (source row, target row) between the M nodes
    inputs: torch.Tensor  # [M, input_width]: each node's input features (a reconstruction target)
    # int64 [B]: the row of each sample's own node when a sample is a node's neighbourhood in a larger graph (its
    # other rows are copies of nodes that are samples too); None when every row is a distinct node (graph samples)
    anchors: torch.Tensor | None = None


class GraphEncoder(Encoder):
    """An Encoder over batches of graphs with per-node outputs (see the module docstring)."""

    node_dim: int  # width of NodeOutputs.features

    def forward(self, x: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        return self.readout(self.node_outputs(x))

    def node_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """[M, input_width]: the input features of every node of batch `x`, in NodeOutputs order (a method that hides
        nodes draws its mask over these rows)."""
        raise NotImplementedError

    def node_outputs(self, x: torch.Tensor, hide: torch.Tensor | None = None,
                     mask_token: torch.Tensor | None = None) -> NodeOutputs:
        raise NotImplementedError

    def readout(self, nodes: NodeOutputs) -> torch.Tensor:
        raise NotImplementedError


def encoder_kind_name(kind: type[Encoder]) -> str:
    """'a sequence encoder' / 'a token encoder' / 'an encoder', for error messages."""
    if issubclass(kind, TokenEncoder):
        return "a token encoder (patch tokens that can be dropped, e.g. vit_tiny)"
    if issubclass(kind, GraphEncoder):
        return "a graph encoder (per-node outputs, e.g. gin)"
    if issubclass(kind, VocabularyEncoder):
        return "an encoder over vocabulary ids (text)"
    return "a sequence encoder (per-step outputs)" if issubclass(kind, SequenceEncoder) else "an encoder"
