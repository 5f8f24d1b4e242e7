"""npy: sources read the same way for every modality (one reader, data.load_npy_arrays)."""
import numpy as np
import pytest

from selfsup.loading import load_dataset
from selfsup.errors import ConfigError, DataError

SHAPES = {"image": (12, 8, 8), "timeseries": (12, 2, 16), "tabular": (12, 5)}


@pytest.mark.parametrize("modality", sorted(SHAPES))
def test_npy_labels_and_test_split_for_every_modality(tmp_path, modality):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, SHAPES[modality]).astype(np.uint8 if modality == "image" else np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "xt.npy", x[:4])
    np.save(tmp_path / "y.npy", np.arange(12) % 3)
    np.save(tmp_path / "yt.npy", np.array([0, 1, 2, 0]))
    uri = f"npy:{tmp_path / 'x.npy'}?labels={tmp_path / 'y.npy'}&test={tmp_path / 'xt.npy'}&test_labels={tmp_path / 'yt.npy'}"
    ds = load_dataset(uri, modality=modality)
    assert ds.modality == modality and len(ds.train) == 12 and len(ds.test) == 4
    assert list(ds.train.y) == list(np.arange(12) % 3) and list(ds.test.y) == [0, 1, 2, 0]
    np.save(tmp_path / "y5.npy", np.arange(5))
    with pytest.raises(DataError, match="y5.npy: 5 labels for 12 samples"):
        load_dataset(f"npy:{tmp_path / 'x.npy'}?labels={tmp_path / 'y5.npy'}", modality=modality)
    with pytest.raises(ConfigError, match="test_labels= needs test="):
        load_dataset(f"npy:{tmp_path / 'x.npy'}?test_labels={tmp_path / 'yt.npy'}", modality=modality)
