"""The core contracts are open: a new modality (sets of 2-D points), a new view recipe (random subsets of a set's
points) and a new method (a contrastive loss between two subsets), each defined in this file alone, register
themselves, train through `selfsup.train`, are listed by the registries and the compatibility table, embed and
evaluate, and the trained encoder beats the same encoder untrained. Nothing under src/ knows about them."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import selfsup
from selfsup.compatibility import modalities_for, supported_pairs
from selfsup.data import Dataset, Split
from selfsup.encoders import Encoder
from selfsup.errors import ConfigError, DataError
from selfsup.evaluation.knn import knn_accuracy
from selfsup.methods import Method, OptimizerDefaults, methods, register_method
from selfsup.modalities import Modality, modalities
from selfsup.registry import Registry
from selfsup.methods.base import StepInfo
from selfsup.views import ViewRequest, Views

POINTS = 32  # points per set
SUBSET = 16  # points per view
set_encoders: Registry = Registry("point-set encoder")


@set_encoders.register("deepsets", "DeepSets / PointNet: a per-point MLP, max pooling, an MLP (Zaheer et al. 2017)")
class DeepSets(Encoder):
    def __init__(self, spec: dict, width: int = 64) -> None:
        super().__init__()
        self.out_dim, self.input_width = width, 2
        self.phi = nn.Sequential(nn.Linear(2, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU())
        self.rho = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, P, 2] -> [B, width], the same for any order or P
        return self.rho(self.phi(x).amax(dim=1))


def normalised(x: torch.Tensor) -> torch.Tensor:
    """Each set centred on its mean point and scaled to unit RMS radius (where and how big are not the content)."""
    x = x.float() - x.float().mean(dim=1, keepdim=True)
    return x / x.pow(2).sum(-1).mean(-1).sqrt().clamp_min(1e-6)[:, None, None]


class SubsetViews:
    """The "subsets" recipe: each global view is a random subset of SUBSET points of the set, turned by a random
    angle and jittered."""

    def __init__(self, request: ViewRequest, spec: dict) -> None:
        self.request = request

    def __call__(self, batch: torch.Tensor, generator: torch.Generator | None = None) -> Views:
        views = []
        for _ in range(self.request.global_views):
            order = torch.rand(batch.shape[:2], generator=generator, device=batch.device).argsort(dim=1)[:, :SUBSET]
            chosen = normalised(torch.gather(batch, 1, order[..., None].expand(-1, -1, 2)))
            angle = 2 * torch.pi * torch.rand(len(batch), generator=generator, device=batch.device)
            c, s = torch.cos(angle), torch.sin(angle)
            turn = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)  # [B, 2, 2]
            views.append(chosen @ turn + 0.02 * torch.randn(chosen.shape, generator=generator, device=batch.device))
        return Views(views)


class PointSets(Modality):
    name = "point_sets"
    summary = "sets of 2-D points, [N, P, 2] (defined in tests/test_extension.py)"
    encoders = set_encoders
    view_recipes = ("subsets",)

    def from_array(self, x: np.ndarray, where: str) -> torch.Tensor:
        x = np.asarray(x)
        if x.ndim != 3 or x.shape[2] != 2 or not np.issubdtype(x.dtype, np.floating):
            raise DataError(f"{where}: point sets are a float array [N, P, 2], got {x.dtype} {x.shape}")
        return torch.from_numpy(x.astype(np.float32))

    def fit_spec(self, x: torch.Tensor) -> dict:
        return {"points": int(x.shape[1])}

    def default_encoder(self, spec: dict) -> str:
        return "deepsets"

    def view_maker(self, request: ViewRequest, spec: dict, strength: float = 1.0, options: dict | None = None):
        if request.recipe not in self.view_recipes:
            raise ConfigError(f"point sets make no {request.recipe!r} views; they make: subsets")
        return SubsetViews(request, spec)

    def prepare(self, x: torch.Tensor, spec: dict) -> torch.Tensor:
        return normalised(x)

    def toy_data(self, n: int, generator: np.random.Generator) -> np.ndarray:
        return generator.normal(size=(n, POINTS, 2))


class SubsetContrast(Method):
    requested_views = ViewRequest("subsets")
    optimizer = OptimizerDefaults("adamw", lr=3e-3, weight_decay=0.0)

    def __init__(self, encoder: Encoder, temperature: float = 0.2, proj_dim: int = 32) -> None:
        super().__init__(encoder)
        self.temperature = temperature
        self.projector = nn.Linear(self.feature_dim, proj_dim)

    def loss_on_views(self, views: Views, step: StepInfo):
        z1, z2 = (F.normalize(self.projector(h), dim=1) for h in self.encode(views.global_views))
        logits = z1 @ z2.T / self.temperature
        targets = torch.arange(len(z1), device=z1.device)
        return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2, {}


def shapes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sets of POINTS points on the outline of a regular polygon with 3, 4, 5 or 6 corners (the class), turned by a
    random angle, scaled, shifted and jittered: the class is the outline, not where, how big or which way up."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    corners = (y + 3)[:, None]
    t = rng.uniform(0, 1, (n, POINTS)) * corners  # position along the outline, in sides
    side, along = np.floor(t), t - np.floor(t)
    a0, a1 = 2 * np.pi * side / corners, 2 * np.pi * (side + 1) / corners
    x = np.stack([(1 - along) * np.cos(a0) + along * np.cos(a1), (1 - along) * np.sin(a0) + along * np.sin(a1)], -1)
    angle = rng.uniform(0, 2 * np.pi, n)
    rotation = np.stack([np.stack([np.cos(angle), -np.sin(angle)], -1), np.stack([np.sin(angle), np.cos(angle)], -1)],
                        -2)
    x = np.einsum("npd,nkd->npk", x, rotation) * rng.uniform(0.5, 2.0, (n, 1, 1)) + rng.normal(0, 2, (n, 1, 2))
    return x + 0.02 * rng.normal(size=x.shape), y


@pytest.fixture
def registered():
    """The modality and the method registered for one test and removed after it (registering at import would put
    them into the registry-generated tests of the files collected after this one)."""
    modalities.add(PointSets.name, PointSets(), PointSets.summary)
    try:
        register_method("subset_contrast", "Contrastive between two random subsets of a set (defined in a test).",
                        "tests/test_extension.py")(SubsetContrast)
        try:
            yield
        finally:
            methods.remove("subset_contrast")
    finally:
        modalities.remove(PointSets.name)


def test_a_modality_recipe_and_method_defined_outside_src_train_embed_and_evaluate(registered, tmp_path):
    assert ("subset_contrast", "point_sets") in supported_pairs()
    assert modalities_for("subset_contrast") == ["point_sets"]
    (x, y), (x_test, y_test) = shapes(600, 0), shapes(300, 1)
    modality = PointSets()
    data = Dataset("shapes", "point_sets", Split(modality.from_array(x, "shapes"), y),
                   Split(modality.from_array(x_test, "shapes test"), y_test))
    run = selfsup.train(data, method="subset_contrast", epochs=15, batch_size=100, seed=0, monitor=False,
                        progress=False, out=tmp_path / "run")
    assert run.summary["method"] == "subset_contrast" and run.resolved.encoder == "deepsets"
    loaded = selfsup.load(tmp_path / "run")
    z, z_test = loaded.embed(x), loaded.embed(x_test)
    assert z.shape == (600, 64) and np.array_equal(z, run.embed(x))
    untrained = DeepSets({})
    with torch.no_grad():
        r, r_test = (untrained(modality.prepare(torch.from_numpy(a.astype(np.float32)), run.resolved.data_spec))
                     .numpy() for a in (x, x_test))
    trained, random = knn_accuracy(z, y, z_test, y_test, k=10), knn_accuracy(r, y, r_test, y_test, k=10)
    assert trained > random + 0.1 and trained > 0.8, (trained, random)
    # the ways every modality is refused still hold for a new one
    with pytest.raises(ConfigError, match="does not train on point_sets data"):
        selfsup.train(data, method="simclr", epochs=1)
    with pytest.raises(DataError, match="float array"):
        modality.from_array(np.zeros((3, 4), np.int64), "bad.npy")
