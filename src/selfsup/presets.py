"""Measured default configurations for named datasets.

`selfsup train --data NAME` (and `selfsup.train("NAME")`) use the preset of NAME when the caller chooses
neither a method nor an encoder (nor their options): the configuration a benchmark found best on a validation split carved
from the training data (never on the test set). Options the caller does give override the preset's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .data import parse_uri
from .config import merge_options


@dataclass(frozen=True)
class Preset:
    """TrainConfig options for one dataset, and where they were measured."""

    options: dict[str, Any]
    chosen_by: str
    results: str
    modality: str  # the modality it was measured on: a source that reads another one gets no preset


PRESETS: dict[str, Preset] = {}


def register(name: str, preset: Preset) -> None:
    PRESETS[name] = preset


#: Options that make a configuration the caller's own: given any of them, no preset applies.
OWN_CHOICE = ("method", "encoder", "method_options", "encoder_options")


def preset_for(data: str | None, options: dict[str, Any]) -> Preset | None:
    """The preset of data source `data` when `options` choose neither the method nor the encoder, else None."""
    if not data or any(options.get(k) for k in OWN_CHOICE):
        return None
    from .loading import source_modality

    try:
        scheme = parse_uri(data).scheme
    except Exception:  # noqa: BLE001 -- an unreadable URI is reported later, by the data loader
        return None
    preset = PRESETS.get(scheme)
    if preset is None or source_modality(data, options.get("modality")) != preset.modality:
        return None
    return preset


def with_preset(data: str | None, options: dict[str, Any]) -> tuple[dict[str, Any], Preset | None]:
    """`options` completed by the dataset's preset (the caller's own options win), and the preset used."""
    preset = preset_for(data, options)
    if preset is None:
        return options, None
    return merge_options(preset.options, options), preset


#: Fashion-MNIST under a CPU budget: the winner of `benchmarks/fmnist_budget.py --search` (results in
#: benchmarks/results/fmnist_budget_search.json, final round: 10 minutes, seeds 0-2, kNN + linear probe on 10k images
#: held out from the training set): RotNet (predict which of 4 rotations turned the image) on a ConvNet-4 of widths
#: 48-96-192-384 at the images' 28 x 28 pixels, its last map average- and max-pooled and concatenated (768-d), with
#: its paper's optimiser. In 10 minutes on 2 cores it gets ~3-5 epochs and beats the 10-minute SimCLR recipe it
#: replaced (16-px views, ~12 epochs) by ~4 points of validation kNN: on 28-px grey garments the rotation task needs
#: no colour or crop invariance the data lacks. The max-pooled half adds ~1 point of validation kNN in the 3-minute
#: screens (rotnet-w48-avgmax against rotnet-w48): where on the garment a part is matters less than that it is there.
FASHION_MNIST = Preset(
    {"method": "rotnet", "encoder": "convnet4", "encoder_options": {"widths": [48, 96, 192, 384], "pool": "avgmax"}},
    "benchmarks/fmnist_budget.py --search: kNN + linear probe on 10k images held out from the training set, "
    "3 seeds in the final round",
    "benchmarks/results/fmnist_budget_search.json", "image")


#: scikit-learn's 8x8 digits (the README's main job): the winner of `benchmarks/digits_main_job.py --search` (results in
#: benchmarks/results/digits_main_job_search.json: 30 epochs, kNN + linear probe by 5-fold cross-validation over the
#: training labels, 3 seeds): MoCo v2 (momentum key encoder, queue of past keys) at temperature 0.1 instead of its
#: paper's 0.2. Its queue is capped below the 1,347 training images, so every step scores each image against
#: ~1,000 negatives instead of a batch's 510: kNN 0.988 and linear 0.989 against SimCLR's best 0.984 / 0.987.
DIGITS = Preset({"method": "moco", "method_options": {"temperature": 0.1}},
                "benchmarks/digits_main_job.py --search: 5-fold cross-validated kNN + linear probe on the training "
                "labels, 3 seeds", "benchmarks/results/digits_main_job_search.json", "image")


def _register_builtin() -> None:
    register("fashion-mnist", FASHION_MNIST)
    register("digits", DIGITS)
    from .modalities.timeseries.modality import DEFAULT_CONFIG as SERIES_CONFIG

    series = Preset(dict(SERIES_CONFIG), "cross-validation inside the training splits of five UCR/UEA problems",
                    "benchmarks/results/ucr.json", "timeseries")
    for name in ("ucr", "ts", "tscsv"):
        register(name, series)
    tables = Preset({"method": "scarf", "encoder": "mlp", "batch_size": 128},
                    "validation splits of the training rows of four tables", "benchmarks/results/tabular.json",
                    "tabular")
    for name in ("csv", "parquet", "sklearn", "mlbench"):
        register(name, tables)


_register_builtin()
