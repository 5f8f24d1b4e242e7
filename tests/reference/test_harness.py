"""The harness itself: the comparison helpers catch a difference (negative control) and pass on equality."""
import pytest
import torch

from _compare import assert_close, value_and_grad


def test_assert_close_fails_on_a_small_relative_difference():
    x = torch.randn(5, 7)
    assert_close(x, x.clone())
    with pytest.raises(AssertionError):
        assert_close(x, x * (1 + 1e-3))


def test_value_and_grad_returns_the_gradient_of_every_input():
    a, b = torch.randn(3), torch.randn(3)
    value, (ga, gb) = value_and_grad(lambda x, y: (x * y).sum(), a, b)
    assert_close(value, (a * b).sum())
    assert_close(ga, b)
    assert_close(gb, a)
