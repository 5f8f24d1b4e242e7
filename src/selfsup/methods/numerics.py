"""Loss arithmetic in float32 whatever the surrounding autocast: one decorator that every loss wears.

Under ``torch.autocast(dtype=torch.bfloat16)`` the encoder and heads run in bf16 where that is faster,
but autocast also recasts the operands of every matmul, including those *inside* a loss: a
``z.float() @ z.float().T`` written in a loss still yields a bf16 matrix under autocast. bf16 keeps 8
significant bits, so a similarity logit of 1/T = 10 is rounded by up to 0.04 and a covariance entry by
0.4 % of its size; these errors do not average out, unlike the rounding of the network's activations,
which a similarity or correlation sums over many dimensions. So the loss functions themselves
(normalisation, similarity/correlation/covariance matrices, softmax and log-sum-exp, reconstruction
errors) are decorated with :func:`full_precision`: autocast is switched off for the call and every
floating tensor argument arrives as float32. A new method gets this by decorating its loss function;
``tests/test_precision.py`` checks every registered method and shows that a loss without the decorator
fails the check.
"""
from __future__ import annotations

import contextlib
import functools
import threading
from typing import Any, Callable, Iterator, NamedTuple, TypeVar

import torch

F = TypeVar("F", bound=Callable[..., Any])

AUTOCAST_DEVICES = ("cpu", "cuda", "xpu", "mps", "hpu")

# every loss function decorated so far, by qualified name (for tests and documentation)
FULL_PRECISION_LOSSES: dict[str, Callable[..., Any]] = {}


class LossCall(NamedTuple):
    """One outermost call of a full-precision loss: the undecorated function, its arguments as the method
    passed them (bf16 under autocast), and what the call returned."""

    function: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    result: Any


class _CallLog(threading.local):
    def __init__(self) -> None:
        self.calls: list[LossCall] | None = None
        self.depth = 0


_call_log = _CallLog()


@contextlib.contextmanager
def recorded_loss_calls() -> Iterator[list[LossCall]]:
    """Within the block, every outermost full-precision loss call is appended to the yielded list, so a test can
    recompute a method's loss from exactly the tensors its heads produced."""
    previous, _call_log.calls = _call_log.calls, []
    try:
        yield _call_log.calls
    finally:
        _call_log.calls = previous


def _to_float32(value: Any, device_types: set[str]) -> Any:
    """`value` with every low-precision floating tensor (bf16, fp16), also inside lists/tuples/dicts, as float32."""
    if isinstance(value, torch.Tensor):
        device_types.add(value.device.type)
        if value.is_floating_point() and value.dtype not in (torch.float32, torch.float64):
            return value.float()
        return value
    if isinstance(value, (list, tuple)):
        converted = [_to_float32(v, device_types) for v in value]
        return type(value)(converted) if isinstance(value, list) else tuple(converted)
    if isinstance(value, dict):
        return {k: _to_float32(v, device_types) for k, v in value.items()}
    return value


def full_precision(loss_fn: F) -> F:
    """Decorator: run `loss_fn` with autocast disabled on its tensors' devices, its floating inputs as float32.

    Gradients flow through the casts, back to the bf16 activations that produced the inputs.
    """

    @functools.wraps(loss_fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        device_types: set[str] = set()
        args32 = _to_float32(args, device_types)
        kwargs32 = _to_float32(kwargs, device_types)
        _call_log.depth += 1
        try:
            with contextlib.ExitStack() as stack:
                for device_type in sorted(device_types):
                    if device_type in AUTOCAST_DEVICES:  # others ('meta', ...) have no autocast to switch off
                        stack.enter_context(torch.autocast(device_type=device_type, enabled=False))
                result = loss_fn(*args32, **kwargs32)
        finally:
            _call_log.depth -= 1
        if _call_log.calls is not None and _call_log.depth == 0:
            _call_log.calls.append(LossCall(loss_fn, args, kwargs, result))
        return result

    FULL_PRECISION_LOSSES[f"{loss_fn.__module__}.{loss_fn.__qualname__}"] = wrapper
    return wrapper  # type: ignore[return-value]
