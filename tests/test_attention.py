"""Attention as the Transformers compute it: the written-out product used on the CPU in bf16 against PyTorch's fused
kernel and a float64 reference (values, padding, sequences with no valid token, gradients), and where each is used."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from selfsup.layers import EXPLICIT_ATTENTION_MAX_TOKENS, Attention, attention, explicit_attention_pays

VALID = torch.tensor([[True] * 9, [True, True, False, True, False, False, True, False, True], [False] * 9])


def reference(q, k, v, valid):
    """float64 softmax(q k^T / sqrt(d)) v with invalid keys left out; a sequence without valid keys gives zeros."""
    q, k, v = (t.double() for t in (q, k, v))
    scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    scores = scores.masked_fill(~valid[:, None, None, :], float("-inf"))
    weights = torch.nan_to_num(scores.softmax(dim=-1), nan=0.0)
    return weights @ v


def errors(fn, seed: int = 0) -> tuple[float, float]:
    """Largest error of `fn` in bf16 against the float64 reference: of the output, and of the gradient of
    sum(output * probe) with respect to the queries."""
    g = torch.Generator().manual_seed(seed)
    q, k, v, probe = (torch.randn(3, 2, 9, 16, generator=g) for _ in range(4))
    q16 = q.bfloat16().requires_grad_()
    out = fn(q16, k.bfloat16(), v.bfloat16(), VALID)
    (out.float() * probe).sum().backward()
    q64 = q.double().requires_grad_()
    ref = reference(q64, k, v, VALID)
    (ref * probe.double()).sum().backward()
    return float((out.detach().double() - ref.detach()).abs().max()), float((q16.grad.double() - q64.grad).abs().max())


def fused(q, k, v, valid):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=valid[:, None, None, :])


def test_written_out_attention_is_as_close_to_float64_as_the_fused_kernel():
    assert explicit_attention_pays(torch.zeros(3, 2, 9, 16, dtype=torch.bfloat16))  # the bf16 path is the one tested
    for seed in range(3):
        (ours, our_grad), (theirs, their_grad) = errors(attention, seed), errors(fused, seed)
        assert ours < 0.02 and our_grad < 0.05, (ours, our_grad)
        assert ours <= 1.5 * theirs + 1e-3 and our_grad <= 1.5 * their_grad + 1e-3, (ours, theirs, our_grad, their_grad)
    unscaled = errors(lambda q, k, v, valid: attention(q * q.shape[-1] ** 0.5, k, v, valid))[0]
    assert unscaled > 0.1, unscaled  # control: a product off by the 1/sqrt(d) scale fails the bound above


def test_padding_and_empty_sequences():
    q, k, v = (torch.randn(3, 2, 9, 16).bfloat16() for _ in range(3))
    out = attention(q, k, v, VALID)
    assert torch.equal(out[2], torch.zeros_like(out[2]))  # no valid key: zeros, as the fused kernel gives
    moved = v.clone()
    moved[:, :, ~VALID[1]] += 5.0  # the padded values of sequence 1 change ...
    assert torch.equal(attention(q, k, moved, VALID)[1], out[1])  # ... and nothing it attends to does


def test_the_fused_kernel_stays_in_float32_on_long_sequences_and_off_the_cpu():
    assert not explicit_attention_pays(torch.zeros(2, 1, 9, 16))
    assert not explicit_attention_pays(torch.zeros(2, 1, EXPLICIT_ATTENTION_MAX_TOKENS + 1, 16, dtype=torch.bfloat16))
    assert explicit_attention_pays(torch.zeros(2, 1, EXPLICIT_ATTENTION_MAX_TOKENS, 16, dtype=torch.bfloat16))
    assert not explicit_attention_pays(torch.zeros(2, 1, 9, 16, dtype=torch.bfloat16, device="meta"))


def test_a_transformer_block_under_bf16_autocast_takes_the_written_out_path(monkeypatch):
    layer, x = Attention(32, 4), torch.randn(2, 9, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = layer(x)

    def refuse(*args, **kwargs):
        raise AssertionError("fused kernel called")

    monkeypatch.setattr(F, "scaled_dot_product_attention", refuse)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(layer(x), expected)
    with pytest.raises(AssertionError, match="fused kernel called"):  # control: float32 calls the fused kernel
        layer(x)
