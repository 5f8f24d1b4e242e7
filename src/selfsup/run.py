"""A finished run: its configuration, input spec and trained encoder; `embed` turns raw data into vectors."""
from __future__ import annotations

import copy
import functools
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import yaml
from torch import nn
from safetensors.torch import load_file

from .encoders import Encoder, SequenceEncoder
from .errors import ConfigError, DataError
from .modalities import get_modality, new_encoder
from .modalities.base import Modality, batched
from .resolved import Resolved
from .storage import Storage, TensorStorage, consecutive, read_batches
from .config import TrainConfig

COMPLETE_MARKER = "summary.json"


@dataclass
class Run:
    """A trained encoder with everything needed to apply it to new data of the same kind."""

    config: TrainConfig
    resolved: Resolved
    encoder: Encoder
    path: Path | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    #: the array or Dataset given in Python that the run trained on (never saved: a loaded run has None)
    dataset: Any = field(default=None, repr=False, compare=False)

    def training_data(self, remedy: str) -> Any:
        """What the run trained on: its data source URI, or the array or Dataset given in Python (which a run that
        `train` returned keeps; a loaded one cannot read them again: a one-line error ending in `remedy`)."""
        if not self.resolved.data_in_memory:
            return self.config.data
        if self.dataset is None:
            raise ConfigError(f"the run was trained on data given in Python ({self.config.data!r}), not a data "
                              f"source: {remedy}")
        return self.dataset

    @property
    def modality(self) -> Modality:
        return get_modality(self.resolved.modality)

    @property
    def spec(self) -> dict[str, Any]:
        return self.resolved.data_spec

    def embed(self, x: Any, batch_size: int = 512, device: str | None = None,
              mask: torch.Tensor | None = None, per_timestep: bool = False, resize: bool = False,
              with_raw: bool = False) -> np.ndarray:
        """Embeddings [n, out_dim] (float32 numpy) of raw data in the run's input format (numpy or tensor).

        per_timestep=True (series encoders): one vector per time step, [n, length, out_dim]. Images of another
        size than the run's are refused unless resize=True (then resized bilinearly, with a warning).
        with_raw=True: the raw baseline's features (`Modality.raw_features`: for tables the z-scored numeric
        columns, missing indicators and one-hot categories) first, then the embedding, in one matrix, for a
        downstream model (gradient-boosted trees) that should see both.
        """
        storage = self.modality.to_storage(x, "input", self.spec)
        storage, notes = self.modality.conform(storage, self.spec, "input", resize=resize)
        for note in notes:
            warnings.warn(note, stacklevel=2)
        z = encode_storage(self.encoder, self.modality, self.spec, storage, batch_size, device, mask,
                           per_timestep=per_timestep)
        return with_raw_features(self, storage, mask, z) if with_raw else z


def with_raw_features(run: Run, storage: torch.Tensor, mask: torch.Tensor | None, z: np.ndarray) -> np.ndarray:
    """[raw features | embedding] (float32) for samples already in the run's storage format."""
    if z.ndim != 2:
        raise ConfigError("raw features go beside one embedding per sample; they cannot be combined with "
                          "per-time-step embeddings")
    raw = run.modality.raw_features(storage, run.spec, mask)
    return np.concatenate([np.asarray(raw, dtype=np.float32).reshape(len(z), -1), z], axis=1)


def encode_storage(encoder: Encoder, modality: Modality, spec: dict[str, Any], x: torch.Tensor | Storage,
                   batch_size: int = 512, device: str | None = None, mask: torch.Tensor | None = None,
                   per_timestep: bool = False) -> np.ndarray:
    """Apply a frozen encoder (eval mode) to storage (a `Storage`, or a tensor of samples) in batches; float32 numpy.

    per_timestep=True uses a `SequenceEncoder`'s `forward_sequence`: [n, length, out_dim].
    """
    rows, z = encode_share(encoder, modality, spec, x, batch_size, device, mask, per_timestep)
    return z if np.array_equal(rows, np.arange(len(rows))) else place_rows(len(rows), [(rows, z)])


def place_rows(n: int, shares: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """The embeddings of rows 0..n-1 from the (rows, embeddings) shares that cover them."""
    if n == 0:
        return shares[0][1]
    first = next(z for _, z in shares if len(z))
    out = np.empty((n, *first.shape[1:]), first.dtype)
    for rows, z in shares:
        out[rows] = z
    return out


@torch.no_grad()
def encode_share(encoder: Encoder, modality: Modality, spec: dict[str, Any], x: torch.Tensor | Storage,
                 batch_size: int = 512, device: str | None = None, mask: torch.Tensor | None = None,
                 per_timestep: bool = False, part: int = 0, parts: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Share `part` of `parts` of `encode_storage`'s work: whole batches of the encoding order, so that the shares of
    several processes hold exactly the embeddings one process computes. Returns the rows encoded and their
    embeddings."""
    forward = encoder
    if per_timestep:
        if not isinstance(encoder, SequenceEncoder):
            raise ConfigError(f"--per-timestep needs a sequence encoder (per-step outputs); "
                              f"{type(encoder).__name__} is not one")
        forward = encoder.forward_sequence
    home = next(encoder.parameters()).device
    dev = torch.device(device) if device else home
    order = modality.encoding_order(x) if isinstance(x, torch.Tensor) and not per_timestep else None
    if order is not None:  # e.g. text by length: batches padded little; the rows say where each output belongs
        x = x[order.to(x.device)]
        mask = mask[order.to(mask.device)] if mask is not None else None
    was_training = encoder.training
    encoder.eval()
    encoder.to(dev)  # the device asked for, and back to where it was afterwards
    out = []
    storage = TensorStorage(x) if isinstance(x, torch.Tensor) else x
    slices = batched(len(storage), batch_size)
    first, last = len(slices) * part // parts, len(slices) * (part + 1) // parts
    try:
        for sl, inp in encoder_inputs(modality, spec, storage, batch_size, dev, first, last, parts > 1):
            kwargs = {"mask": mask[sl].to(dev)} if mask is not None else {}
            out.append(forward(inp, **kwargs).float().cpu())
    finally:
        encoder.train(was_training)
        encoder.to(home)
    start = slices[first].start if first < last else 0
    stop = slices[last - 1].stop if first < last else 0
    rows = (order.cpu()[start:stop] if order is not None else torch.arange(start, stop)).numpy()
    z = torch.cat(out).numpy() if out else np.zeros((0, encoder.out_dim), np.float32)
    return rows, z


def encoder_inputs(modality: Modality, spec: dict[str, Any], storage: Storage, batch_size: int, device: torch.device,
                   first: int = 0, last: int | None = None, distributed: bool = False
                   ) -> Iterator[tuple[slice, torch.Tensor]]:
    """Batches first..last-1 of `storage` in order, as the encoder takes them at `embed` (the modality's `prepare`,
    channels-last where the modality's convolutions are fastest in): (rows, input) pairs."""
    slices = batched(len(storage), batch_size)
    last = len(slices) if last is None else last
    batches = read_batches(storage, first, last, functools.partial(consecutive, batch=batch_size, n=len(storage)),
                           device, start_method="forkserver" if distributed else None)  # no fork under a process group
    for sl, batch in zip(slices[first:last], batches):
        inp = modality.prepare(batch.to(device), spec)
        if modality.channels_last:  # the layout convolutions are fastest in (1.5x measured on CPU)
            inp = inp.contiguous(memory_format=torch.channels_last)
        yield sl, inp


NORM_STATISTICS_SAMPLES = 4096


@torch.no_grad()
def estimate_norm_statistics(encoder: Encoder, modality: Modality, spec: dict[str, Any],
                             storage: torch.Tensor | Storage, seed: int = 0, samples: int = NORM_STATISTICS_SAMPLES,
                             batch_size: int = 256) -> int:
    """Re-estimate the running statistics of the encoder's BatchNorm layers on the inputs as `embed` gives them (up
    to `samples` rows of `storage`, drawn with `seed`): each layer's mean and unbiased variance of its input over all
    those rows at once (float64 sums over batches, not an average of batch moments), the layers normalising by
    batch as in training and the rest of the encoder in eval mode (PreciseBN, Wu & Johnson 2021, arXiv:2105.07576,
    here on inputs rather than training views); weights untouched. Every process that calls it with the same
    storage and seed gets the same statistics. Returns the number of BatchNorm layers (0: none)."""
    norms = [m for m in encoder.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    storage = TensorStorage(storage) if isinstance(storage, torch.Tensor) else storage
    rows = torch.randperm(len(storage), generator=torch.Generator().manual_seed(seed))[:samples].sort().values
    subset = TensorStorage(storage.to(torch.device("cpu")).take(rows))
    sums: dict[nn.Module, list[Any]] = {m: [0, 0.0, 0.0] for m in norms}  # count, sum, sum of squares per channel

    def accumulate(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        h = args[0].detach().double()
        dims = [0, *range(2, h.dim())]
        acc = sums[module]
        acc[0] += h.numel() // h.shape[1]
        acc[1] = acc[1] + h.sum(dims)
        acc[2] = acc[2] + h.square().sum(dims)

    was_training, saved = encoder.training, [copy.deepcopy(m.state_dict()) for m in norms]
    hooks = [m.register_forward_pre_hook(accumulate) for m in norms]
    encoder.eval()
    for m in norms:
        m.train()
    try:
        for _, inp in encoder_inputs(modality, spec, subset, batch_size, next(encoder.parameters()).device):
            encoder(inp)
    finally:
        for hook in hooks:
            hook.remove()
        for m, state in zip(norms, saved):
            m.load_state_dict(state)  # the pass's running updates undone
        encoder.train(was_training)
    for m, (n, total, squares) in sums.items():
        if n == 0:  # a layer the forward never reached keeps its statistics
            continue
        mean = total / n
        m.running_mean.copy_(mean)
        m.running_var.copy_((squares / n - mean.square()) * n / max(n - 1, 1))
    return len(norms)


def untrained_encoder(run: Run, inputs: torch.Tensor | Storage, seed: int | None = None) -> Encoder:
    """The baselines' untrained encoder: the run's architecture freshly initialised (`seed`, default the run's seed
    + 1000), given what training gave the run's encoder besides learning: with norm_statistics "inputs", BatchNorm
    statistics re-estimated on `inputs` (the training inputs), so that the comparison measures training alone."""
    encoder = build_encoder(run.resolved, seed=run.config.seed + 1000 if seed is None else seed)
    if run.resolved.norm_statistics == "inputs":
        estimate_norm_statistics(encoder, run.modality, run.spec, inputs, run.config.seed)
    return encoder


def build_encoder(resolved: Resolved, seed: int | None = None) -> Encoder:
    """The run's encoder architecture, freshly initialised (with `seed` when given)."""
    if seed is not None:
        torch.manual_seed(seed)
    modality = get_modality(resolved.modality)
    return new_encoder(modality, resolved.encoder, resolved.data_spec, **resolved.encoder_options)


def load(path: str | Path, device: str = "cpu") -> Run:
    """Load a complete run directory (never executes pickled code: YAML + safetensors only)."""
    p = Path(path)
    if not p.is_dir():
        partial = p.with_name(p.name + ".partial")
        hint = f" (an unfinished run is in {partial})" if partial.exists() else ""
        raise ConfigError(f"{p}: no such run directory{hint}")
    if not (p / COMPLETE_MARKER).exists():
        raise ConfigError(f"{p}: not a complete run (no {COMPLETE_MARKER})")
    try:
        doc = yaml.safe_load((p / "config.yaml").read_text())
        config = TrainConfig.from_dict(doc["train"], str(p / "config.yaml"))
        resolved = Resolved.from_dict(doc["resolved"], str(p / "config.yaml"))
        summary = json.loads((p / COMPLETE_MARKER).read_text())
    except (OSError, KeyError, TypeError, yaml.YAMLError, json.JSONDecodeError) as exc:
        raise DataError(f"{p}: damaged run directory ({type(exc).__name__}: {exc})") from None
    encoder = build_encoder(resolved)
    try:
        state = load_file(str(p / "encoder.safetensors"), device=device)
        encoder.load_state_dict(state)
    except Exception as exc:
        raise DataError(f"{p / 'encoder.safetensors'}: cannot load weights ({exc})") from None
    encoder.to(device).eval()
    return Run(config, resolved, encoder, p, summary)
