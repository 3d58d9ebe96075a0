"""Time and peak memory of phantom generation (the README's demo data).

    python benchmarks/phantom_speed.py [--repeats 3]

Prints a markdown table row per stage for docs/BENCHMARKS.md.
"""

import argparse
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from HeadRegistrationLib.data import phantom
from HeadRegistrationLib.data.phantom import write_phantom


def timed(function, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return np.median(times), min(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    repeats = parser.parse_args().repeats
    with tempfile.TemporaryDirectory() as folder:
        rows = {
            "paint_head (1 mm label map, 185x233x288)": lambda: phantom.paint_head(0),
            "make_phantom_pair (RIRE grids: CT 512x512x29, MR 256x256x26)": lambda: phantom.make_phantom_pair(0),
            "headreg phantom (generate + write 3 files)": lambda: write_phantom(
                Path(folder), 0, None, None, phantom.CT_GRID, phantom.MR_GRID, False, True),
        }
        print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}")
        print("| stage | median s | min s |\n|---|---|---|")
        for name, function in rows.items():
            median, best = timed(function, repeats)
            print(f"| {name} | {median:.2f} | {best:.2f} |")
    print("\ntruth check, bone Dice of the CT carried onto the MR (seed: with truth / identity):")
    for seed in (0, 1, 2):
        pair = phantom.make_phantom_pair(seed)
        with_truth = phantom.bone_dice(pair.ct, pair.mr_labels, pair.truth)
        without = phantom.bone_dice(pair.ct, pair.mr_labels, np.eye(4))
        print(f"  seed {seed}: {with_truth:.2f} / {without:.2f}")
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory of the process: {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()
