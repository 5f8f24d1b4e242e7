"""Jigsaw puzzles: Noroozi & Favaro 2016, "Unsupervised Learning of Visual Representations by Solving Jigsaw
Puzzles".

    tiles = the 9 tiles of a 3 x 3 grid (the `tiles` recipe: each a random 64/75 of its cell, so no edge continues)
    k ~ uniform over a set of P permutations chosen for maximal Hamming distance
    f_i = head(encoder(tile_i))                       # every tile encoded separately, shared weights (siamese)
    logits = classifier(concat(f_{perm_k(1)}, ..., f_{perm_k(9)}))
    loss = cross-entropy(logits, k)

The permutation set is the paper's greedy maximal-minimum-Hamming-distance selection over all 9! orders, from a
fixed seed (so every run and process has the same set). Paper: P = 1000, fc6 512 per tile, fc7 4096, SGD lr 0.01 at
batch 256. Departures for small images and CPU budgets: P = 100 (the paper's ablation finds 100 about as good for
transfer), heads 128 per tile and 512 after the concatenation, lr 0.01 x batch/256 with momentum 0.9, weight decay
5e-4; the permutation is drawn per sample from torch's global generator (checkpointed). Images only (only the image
modality makes tiles).

BatchNorm statistics: the encoder trains on tiles (a ninth of a crop that small images enlarge, 8 x 8 digits to 27
px), whose running averages misdescribe the whole images `embed` is given, so they are re-estimated on the training
inputs when training ends (`norm_statistics = "inputs"`; the paper's network had no BatchNorm), and the
untrained-encoder baseline gets the same (benchmarks/results/digits_methods_validation.json compares both ways).
"""
from __future__ import annotations

import functools
import itertools

import numpy as np
import torch
from torch import nn

from ..views import ViewRequest, Views
from .base import Method, OptimizerDefaults, StepInfo, StepLogs, check_option, register_method
from .pretext import pretext_loss, task_accuracy

TILES = 9
PERMUTATION_SEED = 2016


@functools.lru_cache(maxsize=4)
def maximal_hamming_permutations(count: int, seed: int = PERMUTATION_SEED, tiles: int = TILES) -> np.ndarray:
    """[count, tiles]: a random first permutation, then repeatedly the one whose smallest Hamming distance to those
    chosen is largest (ties: the first in lexicographic order), over all tiles! permutations."""
    everything = np.array(list(itertools.permutations(range(tiles))), dtype=np.int8)
    rng = np.random.default_rng(seed)
    chosen = [int(rng.integers(len(everything)))]
    nearest = (everything != everything[chosen[0]]).sum(axis=1)
    for _ in range(count - 1):
        best = int(nearest.argmax())
        chosen.append(best)
        nearest = np.minimum(nearest, (everything != everything[best]).sum(axis=1))
    result = everything[chosen].astype(np.int64)
    result.setflags(write=False)  # shared by the cache
    return result



@register_method("jigsaw", "Solve jigsaw puzzles: which of P permutations shuffled the 9 tiles of a 3 x 3 grid "
                 "(images only).", "Noroozi & Favaro 2016, arXiv:1603.09246")
class Jigsaw(Method):
    requested_views = ViewRequest("tiles", global_views=TILES)
    optimizer = OptimizerDefaults("sgd", lr=0.01, weight_decay=5e-4)
    norm_statistics = "inputs"  # the tiles are fragments of an enlarged crop: see the docstring

    def __init__(self, encoder, permutations: int = 100, tile_dim: int = 128, hidden_dim: int = 512) -> None:
        super().__init__(encoder)
        check_option("jigsaw", "permutations", permutations, 2, 1000, low_open=False)
        self.register_buffer("orders", torch.from_numpy(maximal_hamming_permutations(int(permutations)).copy()))
        self.tile_head = nn.Sequential(nn.Linear(self.feature_dim, tile_dim), nn.ReLU(inplace=True))
        self.classifier = nn.Sequential(nn.Linear(TILES * tile_dim, hidden_dim), nn.ReLU(inplace=True),
                                        nn.Linear(hidden_dim, int(permutations)))

    def loss_on_views(self, views: Views, step: StepInfo) -> tuple[torch.Tensor, StepLogs]:
        f = torch.stack([self.tile_head(h) for h in self.encode(views.global_views)], dim=1)  # [B, 9, tile_dim]
        labels = torch.randint(0, len(self.orders), (f.shape[0],), device=f.device)
        order = self.orders[labels]  # [B, 9]: position j shows tile order[j]
        shuffled = torch.gather(f, 1, order[..., None].expand(-1, -1, f.shape[-1]))
        logits = self.classifier(shuffled.flatten(1))
        return pretext_loss(logits, labels), {"puzzle_acc": task_accuracy(logits, labels)}
