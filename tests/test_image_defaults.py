"""Every method that trains on images trains with its defaults on the bundled 8 x 8 digits (generated from the
registry: a new image method is covered without editing a list), and the view sizes behind that: multi-crop local
crops and jigsaw tiles adapt to the smallest input the encoder takes, ViT views to whole patches."""
import math

import numpy as np
import pytest
import torch

import selfsup
from selfsup.compatibility import supported_pairs
from selfsup.data import Dataset, Split
from selfsup.errors import ConfigError
from selfsup.loading import load_dataset
from selfsup.methods.pseudo_labels import default_prototypes
from selfsup.modalities import get_modality
from selfsup.modalities.image.augment import tiled_size, tiles
from selfsup.modalities.image.modality import fitted_side
from selfsup.views import ViewRequest

IMAGE_METHODS = sorted(m for m, d in supported_pairs() if d == "image")


@pytest.fixture(scope="module")
def digits_64() -> Dataset:
    """The first 64 training digits with the source's own view options (one step: the default batch of 256 is cut
    to the data set's size)."""
    ds = load_dataset("digits")
    return Dataset("digits", "image", Split(ds.train.x[:64], None), None, dict(ds.info))


@pytest.mark.parametrize("method", IMAGE_METHODS)
def test_every_image_method_trains_with_its_defaults_on_digits(method, digits_64):
    run = selfsup.train(digits_64, method=method, epochs=1, monitor=False, precision="fp32")
    assert run.summary["steps"] == 1 and math.isfinite(run.summary["final_loss"]), run.summary
    z = run.embed(digits_64.train.x[:8])
    assert z.shape == (8, run.encoder.out_dim) and np.isfinite(z).all()


def test_local_crops_and_tiles_adapt_to_the_encoder():
    assert fitted_side(3, 8, 8, 1) == 8  # digits on ConvNet-4: 3-px DINO crops raised to 8
    assert fitted_side(12, 28, 8, 1) == 12  # Fashion-MNIST: the paper's 96/224 of 28 px, unchanged
    assert fitted_side(5, 16, 1, 4) == 8  # a ViT of 4-px patches: whole patches
    assert fitted_side(3, 8, 16, 1) == 8  # never above the global views' size
    assert fitted_side(2, 28, 1, 1) == 4  # never below 4 px
    size = tiled_size(8, 8)
    assert size == 27
    cut = tiles(torch.zeros(2, 1, size, size), torch.Generator().manual_seed(0))
    assert len(cut) == 9 and min(t.shape[-1] for t in cut) >= 8
    assert tiled_size(28, 1) == 28  # large enough already: unchanged


@pytest.mark.parametrize("encoder,local", [("convnet4", 8), ("vit_tiny", 4)])
def test_dino_local_crops_on_digits(encoder, local):
    image = get_modality("image")
    ds = load_dataset("digits")
    spec = image.spec_for_encoder(image.fit_spec(ds.train.x), encoder, {})
    maker = image.view_maker(ViewRequest("instance", global_views=2, local_views=6, local_size=96 / 224), spec)
    views = maker(ds.train.x[:4], torch.Generator().manual_seed(0))
    assert {tuple(v.shape[-2:]) for v in views.local_views} == {(local, local)}


def test_an_explicit_local_size_is_kept_and_checked():
    """The caller's own local_size is not adapted: one the encoder cannot take is a one-line error."""
    ds = load_dataset("digits")
    with pytest.raises(ConfigError, match="views of shape 1x4x4"):
        selfsup.train(ds, method="dino", epochs=1, augmentation={"local_size": 4}, monitor=False)


def test_cluster_counts_follow_the_training_set():
    assert default_prototypes(1_347) == 134 and default_prototypes(50_000) == 3000 and default_prototypes(5) == 2
    with pytest.raises(ConfigError, match="num_prototypes=2000 clusters but it has 1347 samples"):
        selfsup.train(load_dataset("digits"), method="sela", epochs=1, method_options={"num_prototypes": 2000},
                      monitor=False)


def test_each_digits_load_is_a_copy_of_the_arrays_parsed_once():
    """The digits source parses and splits once a process; what one caller does to its data set reaches no other."""
    first = load_dataset("digits")
    before = first.train.x.clone()
    first.train.x[0] += 1
    second = load_dataset("digits")
    assert torch.equal(second.train.x, before) and not torch.equal(first.train.x, before)
    assert second.train.x.shape == (1347, 1, 8, 8) and len(second.test.x) == 450
