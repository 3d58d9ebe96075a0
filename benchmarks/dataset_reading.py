"""How fast a built training set reads back, against a training step that consumes it.

Reads every example of a split in a shuffled order through ``dataset.TrainingSet`` (what a
training loop does) and reports examples per second and MB/s from the page cache's point of
view (run it twice to see cold and warm). When PyTorch is installed it also times one
forward + backward pass of a small 3D convolution trunk (four conv-BN-leaky ReLU-pool blocks
on both volumes, batch 8) on the CPU, so the two rates can be compared as a ratio.

    python benchmarks/dataset_reading.py /work/trainset --split train
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from HeadRegistrationLib.data import dataset


def read_rate(folder, split: str, limit: int | None) -> tuple[float, float, int]:
    examples = dataset.TrainingSet(folder, split)
    order = np.random.default_rng(0).permutation(len(examples))[:limit]
    began = time.perf_counter()
    nbytes = 0
    for i in order:
        nbytes += examples.volumes(int(i)).nbytes // 2   # float16 on disk
    seconds = time.perf_counter() - began
    return len(order) / seconds, nbytes / seconds / 2 ** 20, len(order)


def training_rate(shape, batch: int = 8, repeats: int = 3) -> float | None:
    try:
        import torch
    except ImportError:
        return None
    layers, channels = [], 1
    for width in (8, 16, 32, 64):
        layers += [torch.nn.Conv3d(channels, width, 3, padding=1), torch.nn.BatchNorm3d(width),
                   torch.nn.LeakyReLU(0.1), torch.nn.MaxPool3d(2)]
        channels = width
    trunk = torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool3d(1), torch.nn.Flatten())
    head = torch.nn.Linear(2 * channels, 6)
    optimiser = torch.optim.SGD([*trunk.parameters(), *head.parameters()], lr=1e-3, momentum=0.9)
    volumes = torch.randn(batch, 2, *shape)
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        features = torch.cat([trunk(volumes[:, :1]), trunk(volumes[:, 1:])], dim=1)
        loss = head(features).pow(2).mean() / 2
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        best = min(best, time.perf_counter() - began)
    return batch / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder")
    parser.add_argument("--split", default="train")
    parser.add_argument("--limit", type=int, help="read at most this many examples")
    args = parser.parse_args()
    examples_per_s, mb_per_s, count = read_rate(args.folder, args.split, args.limit)
    shape = dataset.TrainingSet(args.folder, args.split).volumes(0).shape[1:]
    print(f"read {count} examples of {shape} x 2: {examples_per_s:.0f} examples/s, {mb_per_s:.0f} MB/s")
    trained = training_rate(shape)
    if trained is None:
        print("PyTorch not installed: no training-step comparison")
    else:
        print(f"training step (4-block 3D CNN, batch 8, CPU): {trained:.1f} examples/s; "
              f"reading is {examples_per_s / trained:.0f}x faster")


if __name__ == "__main__":
    main()
