"""Assembling a training plan: from a TrainConfig and a Dataset to the method, its storage and view maker, and
the resolved settings a run records (everything needed before the first step, nothing about files)."""
from __future__ import annotations

import typing
import warnings
from dataclasses import dataclass, replace
from typing import Any

import torch

from ..compatibility import modalities_for, trains_on
from ..data import Dataset
from ..encoders import Encoder, encoder_kind_name
from ..errors import ConfigError, DataError
from ..methods import Method, TrainingContext, methods
from ..modalities import default_encoder_for, get_modality, new_encoder
from ..modalities.base import Modality
from ..resolved import Resolved
from ..schedules import Schedule
from ..storage import Storage
from ..views import ViewMaker, Views
from ..config import TrainConfig, check_typed
from .optim import scaled_lr


@dataclass
class TrainingPlan:
    """What the driver trains: the method (around a fresh encoder), the data and how to view it, and the settings
    resolved from the config and the paper's defaults (recorded in config.yaml and checked on resume)."""

    modality: Modality
    method: Method
    storage: Storage
    view_maker: ViewMaker
    resolved: Resolved
    pass_view_maker: ViewMaker | None = None  # the global views only, for Method.before_epoch's pass (None: view_maker)

    def lr_schedule(self, cfg: TrainConfig) -> Schedule:
        """Linear warm-up, then cosine to 0, as a factor of each group's base learning rate."""
        return Schedule(1.0, 0.0, warmup=cfg.warmup_fraction)

    def weight_decay_schedule(self, cfg: TrainConfig) -> Schedule | None:
        """Cosine from the resolved weight decay to the resolved end value (None: constant)."""
        end = self.resolved.weight_decay_end
        return None if end is None else Schedule(self.resolved.weight_decay, end)


def split_encoder_name(name: str) -> tuple[str, dict[str, Any]]:
    """'timm:resnet50' -> ('timm', {'name': 'resnet50'})."""
    head, sep, tail = name.partition(":")
    return (head, {"name": tail}) if sep else (name, {})


class ChannelsLastViews:
    """A view maker whose views come in the channels-last memory format (for modalities that declare it)."""

    def __init__(self, inner: ViewMaker) -> None:
        self.inner = inner

    def __call__(self, batch: Any, generator: torch.Generator | None = None) -> Views:
        return self.inner(batch, generator).map(lambda v: v.contiguous(memory_format=torch.channels_last))


@torch.no_grad()
def check_views_fit_encoder(method: str, enc_name: str, encoder: Encoder, view_maker: ViewMaker,
                            storage: Storage) -> None:
    """Every view shape the method will get goes through the encoder once (2 samples, eval mode: no state
    changes) before training, so views the encoder cannot take (multi-crop crops smaller than its pooling
    allows) are a one-line ConfigError here instead of a failure inside the first step; views that cannot
    teach a randomly initialised encoder are a warning (`warn_on_identical_views`)."""
    views = view_maker(storage.take(torch.arange(min(2, len(storage)))), torch.Generator().manual_seed(0))
    warn_on_identical_views(method, enc_name, encoder, views)
    shapes = {tuple(v.shape[1:]): v for v in views.crops}
    was_training = encoder.training
    encoder.eval()
    try:
        for shape, v in shapes.items():
            try:
                encoder(v)
            except (RuntimeError, ValueError) as exc:
                first = (str(exc).splitlines() or [""])[0]
                raise ConfigError(f"method {method!r} makes views of shape {'x'.join(map(str, shape))} that the "
                                  f"encoder {enc_name!r} cannot take ({first}); use larger inputs or fewer, larger "
                                  "local crops (e.g. --method-option local_crops=0)") from None
    finally:
        encoder.train(was_training)


def warn_on_identical_views(method: str, enc_name: str, encoder: Encoder, views: Views) -> None:
    """One warning when a method's global views of a sample are the same input (and see the same positions) while
    the encoder starts from random weights: the views then differ only by the encoder's dropout, which teaches a
    random encoder little (unsupervised SimCSE is a fine-tuning recipe: its authors start from BERT, and from
    scratch it ends below its untrained encoder on STS-B in benchmarks/results/text.json). The way out is the
    encoder's `pretrained_advice`."""
    first, *rest = views.global_views
    keeps = views.keep or []
    if (encoder.pretrained_start or not rest or not all(torch.equal(first, v) for v in rest)
            or not all(torch.equal(keeps[0], k) for k in keeps[1:])):
        return
    advice = f"; {encoder.pretrained_advice}" if encoder.pretrained_advice else ""
    warnings.warn(f"method {method!r} gets the same input in every view, so its views differ at most by the encoder's "
                  f"dropout, and the encoder {enc_name!r} starts from random weights: such a run learns little"
                  f"{advice}", stacklevel=2)


def build_plan(cfg: TrainConfig, dataset: Dataset, world_size: int = 1) -> TrainingPlan:
    """The configured method around a fresh encoder, its views, and the resolved settings to record.

    The batch size is per process; the learning rate scales with the global batch (batch x processes)
    by the method's paper rule (linear for SimCLR/BYOL/VICReg/..., as OptimizerDefaults.lr_scaling says).
    """
    modality = get_modality(dataset.modality)
    spec = modality.fit_spec(dataset.train.x)
    method_cls = methods.get(cfg.method)
    if not trains_on(method_cls, modality):
        where = modalities_for(cfg.method)
        raise ConfigError(f"method {cfg.method!r} does not train on {dataset.modality} data (it needs "
                          f"{method_cls.requested_views.recipe!r} views and {encoder_kind_name(method_cls.encoder_kind)})"
                          f"; it trains on {', '.join(where) + ' data' if where else 'no registered modality'}")
    default = default_encoder_for(modality, spec, method_cls.encoder_kind) or modality.default_encoder(spec)
    enc_name, enc_opts = split_encoder_name(cfg.encoder or default)
    enc_opts = {**method_cls.encoder_defaults.get(enc_name, {}), **enc_opts, **cfg.encoder_options}
    if enc_name not in modality.encoders:
        known = ", ".join(modality.encoders.names())
        raise ConfigError(f"--encoder {enc_name!r} is not an encoder for {dataset.modality} data; known: {known}")
    unknown = set(cfg.method_options) - set(method_cls.hyperparameters())
    if unknown:
        raise ConfigError(f"method {cfg.method!r} has no option(s) {', '.join(sorted(unknown))}; "
                          f"options: {', '.join(method_cls.hyperparameters())}")
    check_typed(cfg.method_options, typing.get_type_hints(method_cls.__init__), lambda n: f"--method-option {n}")
    if len(dataset.train) < 2:
        raise DataError(f"{dataset.name}: {len(dataset.train)} training sample(s); self-supervised training needs at "
                        "least 2 (batch statistics and in-batch comparisons), better hundreds")
    spec = modality.spec_for_encoder(spec, enc_name, enc_opts)
    torch.manual_seed(cfg.seed)
    try:  # the boundary where option values meet constructors: their complaints name the option
        encoder = new_encoder(modality, enc_name, spec, **enc_opts)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"--encoder-option for {dataset.modality} encoder {enc_name!r}: {exc} "
                          f"(options given: {enc_opts or 'none'})") from None
    if not isinstance(encoder, method_cls.encoder_kind):
        raise ConfigError(f"method {cfg.method!r} needs {encoder_kind_name(method_cls.encoder_kind)}; the "
                          f"{dataset.modality} encoder {enc_name!r} is not one")
    try:
        method = method_cls(encoder, **cfg.method_options)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"--method-option for {cfg.method!r}: {exc} (options given: "
                          f"{cfg.method_options or 'none'})") from None
    method.batched_views = cfg.batched_views
    storage = modality.storage(dataset.train, spec)
    samples = len(storage)
    batch = min(cfg.batch_size, max(1, samples // world_size))
    if world_size > 1 and batch < 2:
        raise ConfigError(f"{samples} training samples are too few for {world_size} processes")
    global_batch = batch * world_size
    steps_per_epoch = max(1, storage.epoch_samples(world_size, batch) // global_batch)
    method.setup(TrainingContext(samples, batch, world_size,
                                 cfg.epochs * steps_per_epoch if cfg.epochs else None))
    defaults = method_cls.optimizer
    request = method.view_request()
    # the data source's view defaults (e.g. no mirror images of digits) under the caller's own options
    augmentation = {**dataset.info.get("view_options", {}), **cfg.augmentation}
    view_maker = modality.view_maker(request, spec, cfg.augmentation_strength, augmentation)
    check_views_fit_encoder(cfg.method, enc_name, encoder, view_maker, storage)
    channels_last = cfg.channels_last and modality.channels_last
    distributed = {"world_size": world_size, "global_batch_size": global_batch, "sync_bn": cfg.sync_bn} \
        if world_size > 1 else {}
    resolved = Resolved(
        modality=dataset.modality, data_spec=spec, encoder=enc_name, encoder_options=enc_opts,
        method_options={**method_cls.hyperparameters(), **cfg.method_options},
        optimizer=cfg.optimizer or defaults.name,
        lr=cfg.lr if cfg.lr is not None else scaled_lr(defaults.lr, global_batch, defaults.lr_scaling),
        encoder_lr_scale=cfg.encoder_lr_scale,
        weight_decay=cfg.weight_decay if cfg.weight_decay is not None else defaults.weight_decay,
        weight_decay_end=cfg.weight_decay_end if cfg.weight_decay_end is not None else defaults.weight_decay_end,
        momentum=defaults.momentum, betas=list(defaults.betas), excluded_lr_scale=defaults.excluded_lr_scale,
        batch_size=batch, views=request.to_dict(), augmentation=augmentation, channels_last=channels_last,
        norm_statistics=method_cls.norm_statistics if cfg.norm_statistics == "method" else cfg.norm_statistics,
        **distributed)
    pass_maker = view_maker if not request.local_views else modality.view_maker(
        replace(request, local_views=0), spec, cfg.augmentation_strength, augmentation)
    wrap = ChannelsLastViews if channels_last else (lambda maker: maker)
    return TrainingPlan(modality, method, storage, wrap(view_maker), resolved, wrap(pass_maker))
