"""Image data sources: scikit-learn digits, Fashion-MNIST IDX files, folders of images, .npy arrays."""
from __future__ import annotations

import functools
import gzip
import os
import struct
import urllib.request
from pathlib import Path

import numpy as np

from ...data import Dataset, SourceRequest, sources
from ...errors import DataError
from .encoded import load_encoded

FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist", "~/.cache/selfsup/fashion-mnist")
FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_MNIST_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                       "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot"]


def image_dataset(name: str, x_train: np.ndarray, y_train, x_test=None, y_test=None, **info) -> Dataset:
    """Validate arrays through the image modality and assemble a Dataset."""
    from .modality import ImageModality

    return ImageModality().dataset_from_arrays(x_train, y_train, name, x_test, y_test, **info)


@functools.cache
def digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, x_test, y_train, y_test) of the digits source, parsed once a process and read-only (the source
    hands out copies)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)
    parts = tuple(train_test_split(x, d.target, test_size=0.25, stratify=d.target, random_state=0))
    for a in parts:
        a.setflags(write=False)
    return parts


@sources.register("digits", "scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes); "
                  "a fixed stratified 75/25 train/test split", modality="image")
def load_digits_source(req: SourceRequest) -> Dataset:
    x_tr, x_te, y_tr, y_te = (a.copy() for a in digits_split())
    # Views for 8x8 digits: crops keep at least 56% of the image (6x6 of its 8x8 pixels; the papers' 8-20% crops
    # are 2x2-3x3 pixels of a digit) and no mirror image (digits are not mirror-symmetric). Chosen on a validation
    # split of the training images (kNN, 10 epochs, seed 0; mean of the six image methods 0.922 -> 0.952,
    # MoCo 0.836 -> 0.989, Barlow Twins 0.903 -> 0.937: `python benchmarks/digits_views.py`, results/digits_views.json).
    return image_dataset("digits", x_tr, y_tr, x_te, y_te, view_options={"crop_scale": [0.56, 1.0], "flip_p": 0.0})


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped), the MNIST family's format."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
        zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
        if zero != 0 or dtype_code != 0x08:
            raise ValueError("not an unsigned-byte IDX file")
        shape = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
        arr = np.frombuffer(bytearray(data), dtype=np.uint8, offset=4 + 4 * ndim)  # writable, no copy
        return arr.reshape(shape)
    except Exception as exc:
        raise DataError(f"{path}: cannot read IDX file ({exc})") from None


def find_fashion_mnist(data_dir: str | None) -> Path:
    """The first directory holding all four Fashion-MNIST files, downloading them if none does."""
    candidates = [data_dir] if data_dir else [os.environ.get("SELFSUP_DATA_DIR", ""), *FASHION_MNIST_DIRS]
    needed = [f for pair in FASHION_MNIST_FILES.values() for f in pair]
    for c in candidates:
        if c and all((Path(c).expanduser() / f).exists() for f in needed):
            return Path(c).expanduser()
    target = Path(data_dir or FASHION_MNIST_DIRS[-1]).expanduser()
    try:
        target.mkdir(parents=True, exist_ok=True)
        for f in needed:
            if not (target / f).exists():
                tmp = target / (f + ".part")
                urllib.request.urlretrieve(FASHION_MNIST_URL + f, tmp)
                tmp.replace(target / f)
        return target
    except Exception as exc:
        where = data_dir or " or ".join(FASHION_MNIST_DIRS)
        raise DataError(f"Fashion-MNIST not found in {where} and download failed ({type(exc).__name__}). "
                        "Install it with 'apt-get install dataset-fashion-mnist' or pass --data-dir DIR "
                        f"holding {', '.join(needed)} (from {FASHION_MNIST_URL})") from None


@sources.register("fashion-mnist", "Zalando's Fashion-MNIST, 28x28 grayscale, 60k train / 10k test, 10 classes "
                  "(Debian dataset-fashion-mnist, --data-dir, or download)", modality="image")
def load_fashion_mnist(req: SourceRequest) -> Dataset:
    root = find_fashion_mnist(req.options.get("dir") or req.data_dir)
    arrays = {split: (read_idx(root / xi), read_idx(root / yi)) for split, (xi, yi) in FASHION_MNIST_FILES.items()}
    (x_tr, y_tr), (x_te, y_te) = arrays["train"], arrays["test"]
    ds = image_dataset("fashion-mnist", x_tr, y_tr, x_te, y_te)
    ds.info["classes"] = FASHION_MNIST_CLASSES
    return ds


@sources.register("folder", "a tree of PNG/JPEG images: folder:PATH[?size=64&mode=RGB&max_pixels=N]; first-level "
                  "sub-folders are labels; PATH/train and PATH/test become splits; decoded in parallel, in memory "
                  "within --memory-budget, else streamed", modality="image")
def load_folder(req: SourceRequest) -> Dataset:
    return load_encoded(req)


@sources.register("tar", "WebDataset-style tar shards: tar:PATTERN[?size=&mode=&label=cls&test=PATTERN&buffer=4096] "
                  "(a .tar, a folder of them, a glob or shard-{000..099}.tar; local, a URL such as s3://B/P/*.tar "
                  "or https://H/shard-{000..099}.tar, or pipe:COMMAND); labels from .cls members",
                  modality="image")
def load_tar(req: SourceRequest) -> Dataset:
    return load_encoded(req)
