"""A method written in this file alone (no edit anywhere else) trains on images, series and tables through the
declared hooks: setup(context), parameter_roles(), momentum_pairs()/target_momentum(), before_optimizer_step(step),
after_optimizer_step(step), extra_state()/load_extra_state()."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import selfsup
from selfsup.methods import Method, OptimizerDefaults, ParameterRoles, TrainingContext, methods
from selfsup.methods.base import make_target, mlp
from selfsup.methods.numerics import full_precision
from selfsup.training import checkpoint as ckpt_io

CONTEXTS: list[TrainingContext] = []


@full_precision
def invariance_variance_loss(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Mean squared distance between the views plus a hinge keeping every dimension's std near 1."""
    std = torch.sqrt(torch.cat([z1, z2]).var(0) + 1e-4)
    return F.mse_loss(z1, z2) + F.relu(1 - std).mean()


class InvarianceVariance(Method):
    """VICReg without its covariance term, with a fixed-lr head and an EMA copy of it: exercises every declared
    hook (the EMA head takes no part in the loss; it shows the trainer moving a declared target)."""

    optimizer = OptimizerDefaults("adamw", lr=1e-3, weight_decay=0.0, lr_scaling="none")

    def __init__(self, encoder, head_dim: int = 32) -> None:
        super().__init__(encoder)
        self.head = mlp(self.feature_dim, head_dim, head_dim)
        self.average_head = make_target(self.head)
        self.updates = 0
        self.before = 0

    def setup(self, context: TrainingContext) -> None:
        CONTEXTS.append(context)

    def parameter_roles(self) -> ParameterRoles:
        return ParameterRoles(fixed_lr=(self.head,))

    def momentum_pairs(self):
        return [(self.head, self.average_head)]

    def target_momentum(self, progress: float) -> float:
        return 0.5

    def loss_on_views(self, views, step):
        z1, z2 = (self.head(h) for h in self.encode(views.global_views))
        loss = invariance_variance_loss(z1, z2)
        return loss, {"std_loss": z1.detach().std()}

    def before_optimizer_step(self, step) -> None:
        assert all(p.grad is not None for p in self.head.parameters())  # after backward
        assert step.step == self.before  # the trainer passes the index of the step it is about to take
        self.before += 1

    def after_optimizer_step(self, step) -> None:
        assert step.step == self.updates
        self.updates += 1

    def extra_state(self) -> dict[str, float]:
        return {"updates": self.updates, "before": self.before}

    def load_extra_state(self, state: dict[str, float]) -> None:
        self.updates, self.before = int(state["updates"]), int(state["before"])


@pytest.fixture
def registered():
    methods.add("invariance_variance", InvarianceVariance, "test-only method", "this file")
    CONTEXTS.clear()
    yield
    methods.remove("invariance_variance")


def data(modality: str):
    rng = np.random.default_rng(0)
    if modality == "image":
        return "digits"
    if modality == "timeseries":
        return selfsup.api.dataset_from_array(rng.standard_normal((96, 2, 32)).astype(np.float32).cumsum(-1),
                                              modality="timeseries")
    return selfsup.api.dataset_from_array(rng.standard_normal((96, 6)), modality="tabular")


@pytest.mark.parametrize("modality", ["image", "timeseries", "tabular"])
def test_a_method_defined_in_a_test_file_trains_on_every_modality(registered, tmp_path, modality):
    run = selfsup.train(data(modality), method="invariance_variance", epochs=2, batch_size=32, monitor=False,
                        threads=1, out=tmp_path / "run", checkpoint_every_steps=1000)
    steps = run.summary["steps"]
    assert steps > 0 and np.isfinite(run.summary["final_loss"])
    (context,) = CONTEXTS
    assert context.batch_size == 32 and context.world_size == 1 and context.total_steps == steps
    ck = ckpt_io.load(ckpt_io.checkpoint_file(tmp_path / "run"))  # the final checkpoint stays with the run
    # both step hooks ran once per step, extra_state saved the counts
    assert ck.state["method_state"] == {"updates": steps, "before": steps}
    fixed = [g for g in ck.state["optimizer"]["param_groups"] if g.get("fixed_lr")]
    assert fixed, "parameter_roles' fixed-lr head got its own group"
    heads = {k: v for k, v in ck.tensors.items() if k.startswith(("model/head.", "model/average_head."))}
    online = {k[len("model/head."):]: v for k, v in heads.items() if k.startswith("model/head.")}
    average = {k[len("model/average_head."):]: v for k, v in heads.items() if k.startswith("model/average_head.")}
    assert online.keys() == average.keys()
    # the trainer moved the declared target by EMA: not frozen at its initial copy, not equal to the online head
    moved = [k for k in online if online[k].is_floating_point() and not torch.equal(online[k], average[k])]
    assert moved
    trained = sum(len(g["params"]) for g in ck.state["optimizer"]["param_groups"])
    assert trained == sum(1 for n, p in run_method_parameters(tmp_path) if not n.startswith("average_head."))


def run_method_parameters(folder):
    """Names of the method's parameters as saved in the run (encoder + heads)."""
    from safetensors.torch import load_file

    enc = load_file(str(folder / "run" / "encoder.safetensors"))
    heads = load_file(str(folder / "run" / "method.safetensors"))
    names = [f"encoder.{k}" for k in enc] + list(heads)
    return [(n, None) for n in names if not n.endswith(("running_mean", "running_var", "num_batches_tracked"))]


def test_registry_remove_is_checked():
    with pytest.raises(selfsup.SelfSupError, match="unknown method 'nope'"):
        methods.remove("nope")
