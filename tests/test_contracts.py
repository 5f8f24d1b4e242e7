"""Contract tests generated from the registries: every registered method on every registered modality it declares
it trains on (compatibility.supported_pairs: the views it requests, the encoder protocol it needs) takes one
training step with a finite loss and gradients, survives a checkpoint round trip with identical state (the next
step gives the same loss bit for bit), and has JSON hyper-parameters. A new method or modality is covered here
without editing a list. A multi-crop request (2 global + 4 local views of 12 pixels on 28-pixel images) trains.
"""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import selfsup
from conftest import small_encoder, toy_samples
from selfsup.compatibility import supported_pairs
from selfsup.data import Dataset, Split
from selfsup.methods import Method, OptimizerDefaults, methods
from selfsup.methods.base import mlp
from selfsup.methods.numerics import full_precision
from selfsup.modalities import get_modality, modalities, new_encoder, small_encoder_options
from selfsup.training import checkpoint as ckpt_io
from selfsup.config import TrainConfig
from selfsup.training.distributed import World
from selfsup.training.epoch_pass import TrainingSetPass
from selfsup.training.loop import LoopState, before_epoch
from selfsup.training.optim import build_optimizer
from selfsup.training.plan import build_plan
from selfsup.training.step import optimisation_step
from selfsup.methods.base import StepInfo
from selfsup.views import ViewRequest, Views, check_views, with_indices

PAIRS = supported_pairs()
BATCH = 16
CPU = torch.device("cpu")


def small_options(cls) -> dict:
    """Heads of width 32 instead of the papers' 2048-8192, and 8 prototypes (clustering methods need no more than
    the toy data's 48 samples); the contracts depend on neither."""
    hp = cls.hyperparameters()
    small = {k: 32 for k, v in hp.items() if k.endswith("_dim") and isinstance(v, int) and not isinstance(v, bool)}
    return {**small, **({"num_prototypes": 8} if "num_prototypes" in hp else {})}


def toy_dataset(modality_name: str) -> Dataset:
    x = get_modality(modality_name).from_array(toy_samples(modality_name), f"toy {modality_name}")
    return Dataset(f"toy-{modality_name}", modality_name, Split(x))


def assemble(method_name: str, modality_name: str):
    cls, data = methods.get(method_name), toy_dataset(modality_name)
    modality = get_modality(modality_name)
    encoder, encoder_options = small_encoder(modality, modality.fit_spec(data.train.x), cls)
    cfg = TrainConfig(data="toy", method=method_name, method_options=small_options(cls), encoder=encoder,
                      encoder_options=encoder_options, batch_size=BATCH, epochs=1)
    plan = build_plan(cfg, data)
    r = plan.resolved
    optimizer = build_optimizer(plan.method, r.optimizer, r.lr, r.weight_decay, r.momentum, r.excluded_lr_scale)
    request = plan.method.view_request()
    before_epoch(plan.method, 0, TrainingSetPass(plan.storage, plan.view_maker, request, BATCH, 0, 0, CPU), CPU, "fp32")
    return plan, optimizer


def step(plan, optimizer, seed: int):
    """One optimisation step on the first BATCH samples, views and dropout drawn from `seed`."""
    idx = torch.arange(BATCH)
    views = with_indices(plan.view_maker(plan.storage.take(idx), torch.Generator().manual_seed(seed)), idx,
                         plan.method.view_request())
    torch.manual_seed(seed)
    return views, optimisation_step(plan.method, plan.method, optimizer, views, StepInfo(0, 0.5), CPU, "fp32")


def test_every_method_and_modality_is_paired():
    """Each registered method trains on some registered modality, each modality takes some method."""
    assert {m for m, _ in PAIRS} == set(methods.names())
    assert {d for _, d in PAIRS} == set(modalities.names())


@pytest.mark.parametrize("method_name,modality_name", PAIRS, ids=[f"{m}-{d}" for m, d in PAIRS])
def test_one_step_checkpoint_round_trip_and_json_hyperparameters(method_name, modality_name, tmp_path):
    cls = methods.get(method_name)
    hp = cls.hyperparameters()
    assert json.loads(json.dumps(hp)) == hp
    torch.manual_seed(0)
    plan, optimizer = assemble(method_name, modality_name)
    method = plan.method
    request = method.view_request()
    assert request.recipe == cls.requested_views.recipe and json.loads(json.dumps(request.to_dict()))

    # the loss and its gradients, before any hook may drop some (DINO freezes its last layer in the first epoch)
    views = with_indices(plan.view_maker(plan.storage.take(torch.arange(BATCH)), torch.Generator().manual_seed(1)),
                         torch.arange(BATCH), request)
    check_views(request, views, modality_name)
    loss, logs = method(views)
    loss.backward()
    trained = [p for g in optimizer.param_groups for p in g["params"]]
    assert trained and all(p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in trained), \
        [n for n, p in method.named_parameters() if any(p is q for q in trained) and p.grad is None]
    assert any(bool(p.grad.abs().sum() > 0) for p in trained)
    optimizer.zero_grad(set_to_none=True)
    views, (loss, logs) = step(plan, optimizer, seed=1)  # the real step: hooks, EMA, queues
    assert loss.dim() == 0 and torch.isfinite(loss), loss
    assert all(torch.isfinite(torch.as_tensor(v)).all() for v in logs.values()), logs

    # checkpoint after one step, restore into a freshly built method and optimiser: identical state
    saver = ckpt_io.Checkpointer(tmp_path, World(), method, optimizer, [], {"config": {}, "resolved": {}}, CPU)
    saver.save(LoopState(steps=1, generators={"data": torch.Generator().manual_seed(0).get_state()}))
    torch.manual_seed(123)  # another initialisation: everything must come from the checkpoint
    plan2, optimizer2 = assemble(method_name, modality_name)
    ckpt_io.restore(ckpt_io.load(ckpt_io.checkpoint_file(tmp_path)), plan2.method, optimizer2, [], 0)
    a, b = method.state_dict(), plan2.method.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), \
        [k for k in a if not torch.equal(a[k], b[k])]
    assert plan2.method.extra_state() == method.extra_state()
    _, (next_loss, _) = step(plan, optimizer, seed=2)
    _, (next_loss2, _) = step(plan2, optimizer2, seed=2)
    assert torch.equal(next_loss, next_loss2), (next_loss, next_loss2)


# ---- multi-crop ----

@full_precision
def global_to_local_loss(global_z: list[torch.Tensor], local_z: list[torch.Tensor]) -> torch.Tensor:
    """Mean cosine distance of every local view's embedding to each (detached) global view's embedding."""
    pairs = [(g.detach(), z) for g in global_z for z in local_z] + [(global_z[0], global_z[1])]
    return sum(1 - F.cosine_similarity(a, b, dim=1).mean() for a, b in pairs) / len(pairs)


class MultiCrop(Method):
    """2 global + 4 local crops (DINO's geometry at Fashion-MNIST scale: 28 and 12 pixels)."""

    requested_views = ViewRequest("instance", global_views=2, local_views=4, local_size=12 / 28)
    optimizer = OptimizerDefaults("adamw", lr=1e-3, weight_decay=0.0, lr_scaling="none")
    shapes: list = []

    def __init__(self, encoder, head_dim: int = 16) -> None:
        super().__init__(encoder)
        self.head = mlp(self.feature_dim, head_dim, head_dim)

    def loss_on_views(self, views: Views, step: StepInfo):
        MultiCrop.shapes.append([tuple(v.shape) for v in views.crops])
        z = [self.head(h) for h in self.encode(views.crops)]
        return global_to_local_loss(z[:2], z[2:]), {}


def test_multi_crop_request_trains_on_images(tmp_path):
    methods.add("multi_crop_test", MultiCrop, "test-only multi-crop method", "this file")
    MultiCrop.shapes.clear()
    try:
        x = get_modality("image").toy_data(64, np.random.default_rng(1))
        run = selfsup.train(selfsup.api.dataset_from_array(x, modality="image"), method="multi_crop_test", epochs=1,
                            batch_size=32, encoder_options={"widths": [8, 16, 16, 16]}, monitor=False, threads=1,
                            out=tmp_path / "run")
    finally:
        methods.remove("multi_crop_test")
    assert run.summary["steps"] == 2 and np.isfinite(run.summary["final_loss"])
    assert MultiCrop.shapes[0] == [(32, 1, 28, 28)] * 2 + [(32, 1, 12, 12)] * 4
    assert run.resolved.views["local_views"] == 4


def test_encode_runs_one_forward_per_resolution_group():
    calls = []

    class Recorder(torch.nn.Module):
        out_dim = 3

        def forward(self, x):
            calls.append(tuple(x.shape))
            return x.flatten(1)[:, :3]

    method = Method(Recorder())
    crops = [torch.randn(4, 1, 8, 8)] * 2 + [torch.randn(4, 1, 4, 4)] * 3
    out = method.encode(crops)
    assert calls == [(8, 1, 8, 8), (12, 1, 4, 4)] and [tuple(o.shape) for o in out] == [(4, 3)] * 5
    torch.testing.assert_close(out[2], crops[2].flatten(1)[:, :3])
    method.batched_views = False
    calls.clear()
    method.encode(crops)
    assert len(calls) == 5


def test_no_method_reads_a_tensor_on_the_host_in_its_step():
    """Logs are tensors: `.item()`/`.tolist()` in a method's class would sync the device every step."""
    import inspect

    for entry in methods:
        source = inspect.getsource(entry.obj)
        assert ".item()" not in source and ".tolist()" not in source, entry.name


# ---- the small encoder sizes the contract tests above train ----

DECLARED_DEFAULTS = [(m, name, options) for m in methods.names()
                     for name, options in methods.get(m).encoder_defaults.items()]


@pytest.mark.parametrize("method_name,encoder_name,options", DECLARED_DEFAULTS,
                         ids=[f"{m}-{e}" for m, e, _ in DECLARED_DEFAULTS])
def test_a_methods_declared_encoder_defaults_name_an_encoder_it_trains_and_build_it(method_name, encoder_name,
                                                                                     options):
    """Method.encoder_defaults apply by encoder name, so a misspelt name or option would silently do nothing: each
    names an encoder of a modality the method trains on, and that encoder builds with the options."""
    where = [d for m, d in PAIRS if m == method_name and encoder_name in get_modality(d).encoders]
    assert where, (method_name, encoder_name)
    for modality_name in where:
        modality = get_modality(modality_name)
        spec = modality.spec_for_encoder(modality.fit_spec(toy_dataset(modality_name).train.x), encoder_name, options)
        new_encoder(modality, encoder_name, spec, **options)


SMALL_ENCODERS = [(d, e.name) for d in modalities.names() for e in get_modality(d).encoders if "small" in e.extra]


def test_every_encoder_the_contract_tests_train_declares_a_small_size():
    """The contract and precision tests train, for each method, the encoder a plan picks at the small size its
    registration declares (`small=`); an encoder without one would be trained at full size, slowly."""
    for method_name, modality_name in PAIRS:
        modality = get_modality(modality_name)
        spec = modality.fit_spec(toy_dataset(modality_name).train.x)
        name, options = small_encoder(modality, spec, methods.get(method_name))
        assert options, (method_name, modality_name, name)


@pytest.mark.parametrize("modality_name,encoder_name", SMALL_ENCODERS, ids=[f"{d}-{e}" for d, e in SMALL_ENCODERS])
def test_an_encoder_at_its_declared_small_size_is_the_same_architecture_smaller(modality_name, encoder_name):
    """Every declared small size is the same class as the full-size encoder with less than half its parameters; the
    full-size encoder, as a user gets it, embeds the toy batch (one finite vector per item) and, in training mode,
    gives every parameter a finite gradient."""
    modality = get_modality(modality_name)
    storage = modality.from_array(modality.toy_data(8, np.random.default_rng(0)), "toy")
    sizes = {}
    for size, options in (("default", {}), ("small", small_encoder_options(modality, encoder_name))):
        spec = modality.spec_for_encoder(modality.fit_spec(storage), encoder_name, options)
        torch.manual_seed(0)
        encoder = new_encoder(modality, encoder_name, spec, **options)
        x = modality.prepare(storage, spec)
        with torch.no_grad():
            out = encoder.eval()(x)
        assert out.shape == (len(storage), encoder.out_dim) and bool(torch.isfinite(out).all()), (size, out.shape)
        sizes[size] = type(encoder), sum(p.numel() for p in encoder.parameters()), encoder, x
    assert sizes["small"][0] is sizes["default"][0] and sizes["small"][1] < sizes["default"][1] / 2, sizes
    _, _, full, x = sizes["default"]
    full.train()(x).sum().backward()
    missing = [n for n, p in full.named_parameters() if p.grad is None or not bool(torch.isfinite(p.grad).all())]
    assert not missing, missing
