"""channels_last and bf16 autocast compute the same loss (and a close gradient) as fp32; loss arithmetic stays
float32 under autocast for every registered method (with a negative control)."""
import contextlib
import sys

import numpy as np
import pytest
import torch

from conftest import small_encoder, toy_samples
from selfsup.methods import methods
from selfsup.methods.numerics import FULL_PRECISION_LOSSES, LossCall, full_precision, recorded_loss_calls
from selfsup.compatibility import supported_pairs
from selfsup.modalities import get_modality, new_encoder
from selfsup.modalities.image.encoders import ConvNet4
from selfsup.methods.base import TrainingContext
from selfsup.storage import TensorStorage
from selfsup.training.epoch_pass import TrainingSetPass
from selfsup.training.loop import before_epoch
from selfsup.training.step import autocast_context
from selfsup.views import Views, with_indices

CPU = torch.device("cpu")


def loss_and_grad(name, channels_last=False, precision="fp32"):
    torch.manual_seed(0)
    method = methods.get(name)(ConvNet4(1, (16, 32, 32, 32)))
    x = torch.rand(32, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    views = Views([x, x.flip(-1)])
    if channels_last:
        method = method.to(memory_format=torch.channels_last)
        views = views.map(lambda v: v.contiguous(memory_format=torch.channels_last))
    with autocast_context(torch.device("cpu"), precision):
        loss, _ = method(views)
    assert loss.dtype == torch.float32  # losses are computed in float32 whatever the autocast
    loss.backward()
    return loss.item(), method.encoder.features[0].weight.grad.flatten().clone()


@pytest.mark.parametrize("name", ["simclr", "vicreg", "byol"])
def test_channels_last_matches_fp32(name):
    (l0, g0), (l1, g1) = loss_and_grad(name), loss_and_grad(name, channels_last=True)
    assert l1 == pytest.approx(l0, rel=1e-5, abs=1e-5)
    # convolution algorithms differ between layouts: fp32 summation order, not a different gradient
    assert torch.nn.functional.cosine_similarity(g0, g1, dim=0) > 0.9999


@pytest.mark.parametrize("name", ["simclr", "vicreg"])
def test_bf16_autocast_close_to_fp32(name):
    (l0, g0), (l1, g1) = loss_and_grad(name), loss_and_grad(name, channels_last=True, precision="bf16")
    assert l1 == pytest.approx(l0, rel=3e-2)
    assert torch.nn.functional.cosine_similarity(g0, g1, dim=0) > 0.95


# ---- every registered method, on every modality it trains on, under forced bf16 autocast ----

def tiny_storage(modality_name: str, multi_crop: bool = False, tiles: bool = False):
    """A few samples of each modality, small enough for emulated bf16 on CPUs without native support (images of
    28 pixels for multi-crop methods and 36 for tiled ones, whose local crops or tiles must still pass ConvNet-4's
    three poolings; local crops of 12 pixels are also whole 4-pixel ViT patches)."""
    rng = np.random.default_rng(0)
    if modality_name == "image":
        side = 36 if tiles else 28 if multi_crop else 12
        return rng.integers(0, 256, (48, 1, side, side)).astype(np.uint8)
    if modality_name == "timeseries":
        return rng.standard_normal((48, 2, 24)).astype(np.float32).cumsum(-1)
    if modality_name == "tabular":
        return rng.standard_normal((48, 6))
    return toy_samples(modality_name)  # a modality added later: its own toy data (48 samples, seed 0)


def small_options(cls) -> dict:
    """Heads of width 64 instead of the papers' 2048-8192 and 2 local crops instead of 6 (the numerics under test
    depend on neither; emulated bf16 on CPUs without native support is slow)."""
    hp = cls.hyperparameters()
    small = {k: 64 for k, v in hp.items() if k.endswith("_dim") and isinstance(v, int) and not isinstance(v, bool)}
    return {**small, **({"local_crops": 2} if "local_crops" in hp else {}),
            **({"num_prototypes": 8} if "num_prototypes" in hp else {})}


PAIRS = supported_pairs()  # declared: the views a method requests and a modality makes, and the encoder protocols


def one_step(method_name: str, modality_name: str, precision: str):
    """The loss of one step (and the calls of the method's full-precision loss functions), from fixed weights,
    views and random draws: only `precision` differs between calls."""
    modality = get_modality(modality_name)
    cls = methods.get(method_name)
    storage = modality.from_array(tiny_storage(modality_name, cls.requested_views.local_views > 0,
                                               cls.requested_views.recipe == "tiles"), "test")
    spec = modality.fit_spec(storage)
    torch.manual_seed(0)
    name, options = small_encoder(modality, spec, cls)
    spec = modality.spec_for_encoder(spec, name, options)  # as the training plan does (a waveform encoder: samples)
    method = cls(new_encoder(modality, name, spec, **options), **small_options(cls))
    request = method.view_request()
    maker = modality.view_maker(request, spec)
    method.setup(TrainingContext(len(storage), 32))  # the lifecycle: setup, the epoch-start hook, then steps
    before_epoch(method, 0, TrainingSetPass(TensorStorage(storage), maker, request, 32, 0, 0, CPU), CPU, "fp32")
    idx = torch.arange(32)
    views = with_indices(maker(storage[idx], torch.Generator().manual_seed(1)), idx, request)
    torch.manual_seed(2)  # methods that draw crops or masks draw the same ones
    with recorded_loss_calls() as calls, autocast_context(torch.device("cpu"), precision):
        loss, _ = method(views)
    loss.backward()
    return loss, calls


def as_dtype(value, dtype):
    """Floating tensors (also inside tuples/lists/dicts) as `dtype`, detached."""
    if isinstance(value, torch.Tensor):
        return value.detach().to(dtype) if value.is_floating_point() else value
    if isinstance(value, (list, tuple)):
        return type(value)(as_dtype(v, dtype) for v in value)
    if isinstance(value, dict):
        return {k: as_dtype(v, dtype) for k, v in value.items()}
    return value


def first(result):
    """The total loss of a loss function's result (some return (total, part, part))."""
    return result[0] if isinstance(result, tuple) else result


def loss_error(call: LossCall, evaluate=None) -> float:
    """Relative error of a loss value against the same loss evaluated in float64 on the same inputs."""
    reference = first(call.function(*as_dtype(call.args, torch.float64), **as_dtype(call.kwargs, torch.float64)))
    value = first(call.result) if evaluate is None else first(evaluate(call))
    return abs(value.double().item() - reference.item()) / max(1.0, abs(reference.item()))


DISCRETE_CHOICE = {"nnclr"}


def tico_terms(call: LossCall) -> tuple[float, float]:
    """TiCo's two terms, -mean cos(z1, z2) and rho mean z1^T C z1, from the arguments of its loss call."""
    z1, z2, covariance, beta, rho = as_dtype(call.args, torch.float64)
    invariance = first(call.function(z1, z2, covariance, beta, 0.0)).item()
    return invariance, first(call.function(z1, z2, covariance, beta, rho)).item() - invariance


# Losses that are a difference of terms larger than the total: bf16 rounds the activations relative to the terms, so
# the terms are compared (TiCo on the toy clips: -0.274 + 0.347 = 0.073, a 0.3% error in the second term moves the
# total by 3%).
CANCELLING_TERMS = {"tico": tico_terms}
# A float32 loss agrees with float64 to ~1e-7 here; bf16 arithmetic inside a loss gives 2e-5 .. 4e-3 (measured).
LOSS_TOL = 1e-6


@pytest.mark.parametrize("method_name,modality_name", PAIRS, ids=[f"{m}-{d}" for m, d in PAIRS])
def test_loss_arithmetic_is_float32_under_bf16_autocast(method_name, modality_name):
    loss32, calls32 = one_step(method_name, modality_name, "fp32")
    loss16, calls = one_step(method_name, modality_name, "bf16")
    assert loss16.dtype == torch.float32 and calls, (method_name, calls)
    for call in calls:
        assert first(call.result).dtype == torch.float32
        # tight: the loss returned under autocast is the loss of the heads' outputs, computed in full precision
        assert loss_error(call) <= LOSS_TOL, (call.function.__name__, loss_error(call))
    # loose: end to end, bf16 only adds the rounding of the network's activations; except where a method makes a
    # discrete choice on them (NNCLR's argmax over its support queue may pick another neighbour under bf16)
    if method_name in CANCELLING_TERMS:
        terms = CANCELLING_TERMS[method_name]
        assert terms(calls[-1]) == pytest.approx(terms(calls32[-1]), rel=2e-2, abs=2e-3)
    elif method_name not in DISCRETE_CHOICE:
        assert loss16.item() == pytest.approx(loss32.item(), rel=2e-2, abs=2e-3)


@contextlib.contextmanager
def losses_undecorated():
    """Every full-precision loss replaced by its undecorated function in its module (loss helpers too)."""
    saved = []
    for wrapper in FULL_PRECISION_LOSSES.values():
        module = sys.modules[wrapper.__module__]
        if getattr(module, wrapper.__name__, None) is wrapper:
            saved.append((module, wrapper.__name__, wrapper))
            setattr(module, wrapper.__name__, wrapper.__wrapped__)
    try:
        yield
    finally:
        for module, name, wrapper in saved:
            setattr(module, name, wrapper)


def bf16_matmul_evaluation(call: LossCall):
    """What the losses did before: cast the inputs to float32 and compute under the surrounding autocast, which
    sends every matmul (similarity, correlation, covariance) back to bf16."""
    with losses_undecorated(), autocast_context(torch.device("cpu"), "bf16"):
        return call.function(*as_dtype(call.args, torch.float32), **as_dtype(call.kwargs, torch.float32))


# MoCo is left out (BYOL and SimSiam have no matrix to round): at initialisation its queue is random, the negative logits are near 0 and their bf16 rounding
# stays within 1.4 x LOSS_TOL; its loss is covered by the positive test above like every other method's.
@pytest.mark.parametrize("method_name", ["simclr", "barlow_twins", "vicreg", "ts2vec"])
def test_negative_control_bf16_matmul_loss_fails_the_precision_test(method_name):
    """The check above has teeth: the same loss with its matrices left in bf16 misses LOSS_TOL by far."""
    modality_name = next(d for m, d in PAIRS if m == method_name)
    _, calls = one_step(method_name, modality_name, "bf16")
    errors = [loss_error(call, bf16_matmul_evaluation) for call in calls]
    # measured (2026-12-06, Intel Xeon with AMX): SimCLR 6.0e-5, Barlow Twins 1.4e-3, VICReg 2.8e-5, TS2Vec 6.6e-4
    # (28x to 1400x LOSS_TOL)
    assert min(errors) > LOSS_TOL, errors


def test_full_precision_switches_autocast_off_inside_the_loss():
    z = torch.randn(8, 4)
    with autocast_context(torch.device("cpu"), "bf16"):
        assert (z.float() @ z.float().T).dtype == torch.bfloat16  # autocast recasts a matmul of float32 inputs
        inside = full_precision(lambda a, b: a @ b.T)(z.bfloat16(), [z][0])
    assert inside.dtype == torch.float32


def test_every_method_is_covered_and_every_loss_is_registered():
    assert {m for m, _ in PAIRS} == set(methods.names())
    names = {name.rsplit(".", 1)[-1] for name in FULL_PRECISION_LOSSES}
    assert {"nt_xent_loss", "moco_loss", "byol_loss", "simsiam_loss", "barlow_twins_loss", "vicreg_loss",
            "info_nce_loss", "vime_loss", "denoising_loss", "hierarchical_contrastive_loss",
            "masked_mse_loss"} <= names


def test_auto_precision_is_fp32_without_native_bf16(monkeypatch):
    from selfsup.training import devices
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: False)
    assert devices.resolve_precision("auto", torch.device("cpu")) == "fp32"
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: True)
    assert devices.resolve_precision("auto", torch.device("cpu")) == "bf16"
    assert devices.resolve_precision("fp32", torch.device("cpu")) == "fp32"


def test_compile_switch_trains_and_keeps_plain_weights(tmp_path):
    """--compile compiles the encoder in place: same parameter names on disk, an eager encoder returned."""
    import selfsup
    from safetensors.torch import load_file

    run = selfsup.train("digits", method="simclr", epochs=1, batch_size=256, compile=True, out=tmp_path / "r",
                        encoder_options={"widths": [8, 8, 8, 8]}, method_options={"proj_hidden_dim": 16},
                        monitor=False)
    assert run.config.compile and run.summary["steps"] > 0
    assert getattr(run.encoder, "_compiled_call_impl", None) is None
    names = set(load_file(str(tmp_path / "r" / "encoder.safetensors")))
    assert names and not any("_orig_mod" in n for n in names)
