"""Comparison helpers of the reference checks (import as `from _compare import ...`)."""
import torch


def assert_close(ours: torch.Tensor, theirs: torch.Tensor, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    """Values equal at rtol 1e-5 in fp32 (the reference checks' tolerance), with a small absolute floor for values near 0."""
    torch.testing.assert_close(ours.detach().float(), theirs.detach().float(), rtol=rtol, atol=atol)


def value_and_grad(fn, *inputs: torch.Tensor):
    """fn(*inputs) and the gradients of its value with respect to every input (fresh leaf copies)."""
    leaves = [x.detach().clone().requires_grad_(True) for x in inputs]
    out = fn(*leaves)
    grads = torch.autograd.grad(out, leaves, allow_unused=True)
    return out.detach(), [g if g is not None else torch.zeros_like(x) for g, x in zip(grads, leaves)]
