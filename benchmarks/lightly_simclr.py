#!/usr/bin/env python
"""LightlySSL 1.6.0's SimCLR on Fashion-MNIST under a wall-clock budget, as a user of that library writes it: the
peer leg of benchmarks/time_to_accuracy.py. Runs in the reference environment (scripts/reference_env.sh: torch
2.14.1, torchvision 0.29.1, lightly 1.6.0), never in the project's own; imports nothing from selfsup.

Protocol "Fashion-MNIST, CPU budget" (shared/reference/benchmark-protocol.md): the 60k training images without
labels; ConvNet-4 (Conv3x3 without bias -> BatchNorm -> ReLU, widths 64-128-256-512, MaxPool2d(2) after the first
three blocks, global average pool); lightly's SimCLRTransform at 28 px (its defaults otherwise: crop scale 0.08-1,
flip, colour jitter p=0.8, greyscale p=0.2, blur p=0.5) normalised with the training mean 0.2860 and std 0.3530;
SimCLRProjectionHead(512, 512, 128); NTXentLoss(temperature=0.5); batch 256; SGD with momentum 0.9 at lightly's
example rate 0.06 and weight decay 5e-4, constant; a DataLoader with num_workers=0 (the fastest setting on 2
cores); 2 threads.

Every --every minutes of training time (the clock stops meanwhile), the frozen backbone embeds the 60k training
images (eval mode, no augmentation) into OUT/minute{M}.npy (float32 [60000, 512], the files' order); OUT/run.json
records steps, images/s and versions. Written atomically (a file under its final name is complete).

    .venv-reference/bin/python benchmarks/lightly_simclr.py --minutes 10 --seed 0 --out DIR
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

MEAN, STD = 0.2860, 0.3530
FMNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


def training_images(path: Path) -> np.ndarray:
    """The idx file's images as uint8 [N, 28, 28]."""
    raw = gzip.open(path).read()
    count, rows, cols = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
    return np.frombuffer(raw, np.uint8, offset=16).reshape(count, rows, cols)


def convnet4() -> nn.Module:
    layers, width_in = [], 1
    for i, width in enumerate((64, 128, 256, 512)):
        layers += [nn.Conv2d(width_in, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        if i < 3:
            layers.append(nn.MaxPool2d(2))
        width_in = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())


class Views(torch.utils.data.Dataset):
    def __init__(self, images: np.ndarray, transform) -> None:
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i], "L"))


@torch.no_grad()
def embed(backbone: nn.Module, images: np.ndarray) -> np.ndarray:
    backbone.eval()
    out = []
    for start in range(0, len(images), 1000):
        x = torch.from_numpy(images[start:start + 1000]).float().div(255).sub(MEAN).div(STD).unsqueeze(1)
        out.append(backbone(x).numpy())
    backbone.train()
    return np.concatenate(out)


def save_atomically(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "wb") as f:
        np.save(f, array)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--every", type=float, default=1.0, help="minutes of training between embeddings")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data", type=Path, default=FMNIST)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    import lightly
    from lightly.loss import NTXentLoss
    from lightly.models.modules import SimCLRProjectionHead
    from lightly.transforms import SimCLRTransform

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    np.random.seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    images = training_images(args.data)
    transform = SimCLRTransform(input_size=28, normalize={"mean": [MEAN], "std": [STD]})
    loader = torch.utils.data.DataLoader(Views(images, transform), batch_size=256, shuffle=True, drop_last=True,
                                         num_workers=0, generator=torch.Generator().manual_seed(args.seed))
    backbone, head, criterion = convnet4(), SimCLRProjectionHead(512, 512, 128), NTXentLoss(temperature=0.5)
    params = list(backbone.parameters()) + list(head.parameters())
    optimizer = torch.optim.SGD(params, lr=0.06, momentum=0.9, weight_decay=5e-4)
    steps, marks, next_mark, paused = 0, [], args.every, 0.0
    batches, clock = iter(loader), time.perf_counter()
    while True:  # the clock runs through loading, augmentation and the step; it stops while the backbone embeds
        try:
            x0, x1 = next(batches)
        except StopIteration:
            batches = iter(loader)
            continue
        loss = criterion(head(backbone(x0)), head(backbone(x1)))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        steps += 1
        trained = time.perf_counter() - clock - paused
        if trained >= min(next_mark, args.minutes) * 60:
            pause = time.perf_counter()
            minute = round(min(next_mark, args.minutes), 3)
            save_atomically(args.out / f"minute{minute:g}.npy", embed(backbone, images))
            marks.append({"minute": minute, "train_seconds": round(trained, 1), "steps": steps,
                          "loss": round(float(loss), 4)})
            next_mark += args.every
            paused += time.perf_counter() - pause
            if trained >= args.minutes * 60:
                break
    tmp = args.out / "run.json.partial"
    tmp.write_text(json.dumps({
        "library": f"lightly {lightly.__version__}", "torch": torch.__version__, "seed": args.seed,
        "minutes": args.minutes, "train_seconds": round(trained, 1), "steps": steps,
        "img_per_s": round(steps * 256 / max(trained, 1e-9), 1),
        "marks": marks}))
    os.replace(tmp, args.out / "run.json")


if __name__ == "__main__":
    main()
