"""channels_last and bf16 autocast compute the same loss (and a close gradient) as fp32 on a small batch."""
import pytest
import torch

from selfsup.methods import methods
from selfsup.modalities.image.encoders import ConvNet4
from selfsup.training.loop import autocast_context


def loss_and_grad(name, channels_last=False, precision="fp32"):
    torch.manual_seed(0)
    method = methods.get(name)(ConvNet4(1, (16, 32, 32, 32)))
    x = torch.rand(32, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    views = [x, x.flip(-1)]
    if channels_last:
        method = method.to(memory_format=torch.channels_last)
        views = [v.contiguous(memory_format=torch.channels_last) for v in views]
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


def test_auto_precision_is_fp32_without_native_bf16(monkeypatch):
    from selfsup.training import session
    monkeypatch.setattr(session, "cpu_has_native_bf16", lambda: False)
    assert session.resolve_precision("auto", torch.device("cpu")) == "fp32"
    monkeypatch.setattr(session, "cpu_has_native_bf16", lambda: True)
    assert session.resolve_precision("auto", torch.device("cpu")) == "bf16"
    assert session.resolve_precision("fp32", torch.device("cpu")) == "fp32"


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
