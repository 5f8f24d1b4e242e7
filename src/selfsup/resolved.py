"""The settings a run resolved before its first step: the configuration's choices completed with the paper's and the
data's defaults. A run records them in config.yaml (`resolved:`), a checkpoint in its header, and a resumed run must
resolve the same ones; `selfsup.load` reads them back to rebuild the encoder and apply it to new data."""
from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from .errors import DataError

DISTRIBUTED = ("world_size", "global_batch_size", "sync_bn")  # recorded only when the run has several processes


@dataclass
class Resolved:
    """What a run trains with, every value decided (none left to a default read later)."""

    modality: str
    data_spec: dict[str, Any]  # the input statistics and shape fitted on the training data (Modality.fit_spec)
    encoder: str
    encoder_options: dict[str, Any]
    method_options: dict[str, Any]  # every hyper-parameter of the method: its defaults under the configured ones
    optimizer: str
    lr: float
    weight_decay: float
    weight_decay_end: float | None  # cosine from weight_decay to this (None: constant)
    momentum: float
    betas: list[float]
    excluded_lr_scale: float  # the rate of the parameters excluded from weight decay, as a factor
    batch_size: int  # per process
    views: dict[str, Any]  # the method's ViewRequest (ViewRequest.to_dict)
    channels_last: bool
    encoder_lr_scale: float = 1.0
    augmentation: dict[str, Any] = field(default_factory=dict)  # the source's view options under --augment's
    precision: str = "fp32"  # fp32 or bf16: what `--precision` resolved to on the run's device
    world_size: int = 1
    global_batch_size: int | None = None
    sync_bn: bool = False
    #: trained on an array or Dataset given in Python, not on a source URI: the config's `data` is only its name,
    #: so evaluating the run needs the data given again
    data_in_memory: bool = False
    #: "inputs": the encoder's BatchNorm statistics were re-estimated on the training inputs when training ended
    #: (the random-encoder baseline gets the same); "views": the running averages over the training views
    norm_statistics: str = "views"

    def to_dict(self) -> dict[str, Any]:
        """The mapping config.yaml holds (the distributed settings only for a run of several processes,
        data_in_memory only when true, norm_statistics only when not "views")."""
        doc = asdict(self)
        if self.world_size == 1:
            for key in DISTRIBUTED:
                doc.pop(key)
        if not self.data_in_memory:
            doc.pop("data_in_memory")
        if self.norm_statistics == "views":
            doc.pop("norm_statistics")
        return doc

    @classmethod
    def from_dict(cls, doc: Any, where: str) -> "Resolved":
        """The settings recorded in `doc` (config.yaml's `resolved:`); a one-line DataError naming `where` when a
        required one is missing or one is unknown."""
        if not isinstance(doc, dict):
            raise DataError(f"{where}: 'resolved' must be a mapping, got {type(doc).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(doc) - known)
        if unknown:
            raise DataError(f"{where}: unknown resolved setting(s) {', '.join(unknown)}")
        missing = [f.name for f in fields(cls) if f.name not in doc and f.default is MISSING
                   and f.default_factory is MISSING]
        if missing:
            raise DataError(f"{where}: resolved setting(s) {', '.join(missing)} missing")
        return cls(**doc)
