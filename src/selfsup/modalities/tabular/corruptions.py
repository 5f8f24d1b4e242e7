"""Batched corruptions of prepared tables ``[B, D]`` (views for self-supervised methods).

Every function takes the prepared batch, its `Layout` (which input dims belong to which column)
and an optional `torch.Generator`, and returns ``(corrupted, mask)`` where `mask` is a float
``[B, F]`` tensor with 1 for the *columns* that were corrupted. A column is always replaced as a
unit (its value and missing indicator, or its whole one-hot block), so corrupted rows stay valid
inputs. Replacement values come from other rows of the batch, i.e. from the columns' empirical
marginals as estimated by the batch (VIME shuffles columns within the batch the same way; SCARF
draws from the whole training set, which a batch of >= 128 rows approximates closely).

- `marginal_replace` (SCARF, Bahri et al. 2022): exactly round(rate * F) columns of every row,
  chosen uniformly, take the value of a uniformly drawn row.
- `mask_and_replace` (VIME, Yoon et al. 2020): each cell is masked with probability p_m and takes
  the value of a per-column random permutation of the batch; the mask returned marks the cells
  whose value actually changed (VIME's mask-estimation target).
- `swap_noise` (Jahrer 2018, Porto Seguro DAE): each cell with probability p takes the value of a
  uniformly drawn row.
- `gaussian_noise`: adds N(0, std^2) to a fraction p of the scaled numeric values (categorical
  blocks and missing indicators are left alone).
"""
from __future__ import annotations

import torch

from .preprocess import Layout


class LayoutTensors:
    """A layout's index tensors on one device (built once per view maker)."""

    def __init__(self, layout: Layout, device: torch.device | str = "cpu") -> None:
        self.layout = layout
        self.n_columns = max(layout.col_of_dim, default=-1) + 1
        self.col_of_dim = torch.tensor(layout.col_of_dim, dtype=torch.long, device=device)
        self.value_dims = torch.tensor(layout.value_dims, dtype=torch.long, device=device)
        self.device = torch.device(device)

    def to(self, device: torch.device) -> "LayoutTensors":
        return self if device == self.device else LayoutTensors(self.layout, device)


def _rand(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """U[0,1) from `generator` on its own device, moved to `device` (CPU generators cannot sample on CUDA)."""
    gdev = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=gdev).to(device)


def _randint(high: int, shape: tuple[int, ...], generator: torch.Generator | None,
             device: torch.device) -> torch.Tensor:
    gdev = generator.device if generator is not None else device
    return torch.randint(high, shape, generator=generator, device=gdev).to(device)


def replace_columns(x: torch.Tensor, lt: LayoutTensors, source_rows: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """x with column j of row i taken from row source_rows[i, j] wherever where[i, j] (all of j's dims)."""
    dims_src = source_rows[:, lt.col_of_dim]  # [B, D]
    dims_on = where[:, lt.col_of_dim]
    return torch.where(dims_on, x.gather(0, dims_src), x)


def changed_columns(a: torch.Tensor, b: torch.Tensor, lt: LayoutTensors) -> torch.Tensor:
    """Float [B, F]: 1 where any input dim of the column differs between a and b."""
    diff = (a != b).float()
    out = torch.zeros(a.shape[0], lt.n_columns, device=a.device)
    return (out.index_add_(1, lt.col_of_dim, diff) > 0).float()


def marginal_replace(x: torch.Tensor, lt: LayoutTensors, rate: float = 0.6,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """SCARF's corruption: round(rate * F) random columns per row replaced by values of random rows."""
    b, f = x.shape[0], lt.n_columns
    q = int(round(min(max(rate, 0.0), 1.0) * f))
    where = torch.zeros(b, f, dtype=torch.bool, device=x.device)
    if q > 0:
        where.scatter_(1, _rand((b, f), generator, x.device).topk(q, dim=1).indices, True)
    src = _randint(b, (b, f), generator, x.device)
    return replace_columns(x, lt, src, where), where.float()


def mask_and_replace(x: torch.Tensor, lt: LayoutTensors, p: float = 0.3,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """VIME's pretext generator: Bernoulli(p) mask, values from a per-column permutation of the batch;
    returns the mask of cells that actually changed (VIME's mask-estimation label)."""
    b, f = x.shape[0], lt.n_columns
    where = _rand((b, f), generator, x.device) < p
    perm = _rand((b, f), generator, x.device).argsort(dim=0)  # an independent permutation per column
    out = replace_columns(x, lt, perm, where)
    return out, changed_columns(out, x, lt)


def swap_noise(x: torch.Tensor, lt: LayoutTensors, p: float = 0.15,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Swap noise: each cell with probability p takes the same column's value from a random row."""
    b, f = x.shape[0], lt.n_columns
    where = _rand((b, f), generator, x.device) < p
    src = _randint(b, (b, f), generator, x.device)
    return replace_columns(x, lt, src, where), where.float()


def gaussian_noise(x: torch.Tensor, lt: LayoutTensors, std: float = 0.1, p: float = 1.0,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Add N(0, std^2) to a fraction p of the scaled numeric values; other dims are untouched."""
    b = x.shape[0]
    out = x.clone()
    mask = torch.zeros(b, lt.n_columns, device=x.device)
    nv = len(lt.value_dims)
    if nv == 0 or std <= 0 or p <= 0:
        return out, mask
    on = _rand((b, nv), generator, x.device) < p
    gdev = generator.device if generator is not None else x.device
    noise = torch.randn((b, nv), generator=generator, device=gdev).to(x.device, x.dtype) * std
    out[:, lt.value_dims] += noise * on
    mask[:, lt.col_of_dim[lt.value_dims]] = on.float()
    return out, mask


CORRUPTIONS = {"scarf": marginal_replace, "vime": mask_and_replace, "swap": swap_noise, "gaussian": gaussian_noise}
