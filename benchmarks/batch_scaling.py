"""Pairs per minute of ``headreg batch register`` on each executor, side by side in one run:
this process (--workers 1), local worker processes (--workers N) and a Dask LocalCluster
(--scheduler local --workers N), on N phantom pairs of RIRE size (the demo's grids, turned
0-180 degrees), with the cost of loading the models measured apart, and the largest
difference between the executors' transforms.

    python benchmarks/batch_scaling.py --pairs 8 --workers 1,2 --out /tmp/scaling
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from HeadRegistrationLib.core import transform_io
from HeadRegistrationLib.data import phantom

LOAD = ("import time; began = time.perf_counter(); from HeadRegistrationLib.register import autoregister; "
        "imported = time.perf_counter(); autoregister.load_models(device='cpu'); "
        "print(imported - began, time.perf_counter() - imported)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--workers", default="1,2", help="comma list of worker counts")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    data = args.out / "pairs"
    rows = []
    for k in range(args.pairs):
        if not (data / f"p{k}" / "truth.tfm").exists():
            phantom.write_phantom(data / f"p{k}", k, 180.0 * k / max(args.pairs - 1, 1), 10.0, overwrite=True)
        rows.append(f"p{k}/ct.nii.gz,p{k}/mr.nii.gz,p{k}")
    (data / "pairs.csv").write_text("a,b,id\n" + "\n".join(rows) + "\n")
    imports, loading = (float(v) for v in subprocess.run([sys.executable, "-c", LOAD], capture_output=True,
                                                         text=True, check=True).stdout.split())
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; {args.pairs} pairs; "
          f"importing the registration {imports:.2f} s, loading the models {loading:.2f} s (once per worker)")
    configs = [("this process", ["--workers", "1"])] if 1 in counts else []
    configs += [(f"{n} local workers", ["--workers", str(n)]) for n in counts if n > 1]
    configs += [(f"LocalCluster, {n} workers", ["--scheduler", "local", "--workers", str(n)]) for n in counts]
    results, transforms = [], {}
    for name, options in configs:
        out = args.out / name.replace(" ", "-").replace(",", "")
        shutil.rmtree(out, ignore_errors=True)   # every executor registers every pair
        began = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "HeadRegistrationLib.cli", "batch", "register",
                               str(data / "pairs.csv"), "--out", str(out), *options],
                              capture_output=True, text=True)
        seconds = time.perf_counter() - began
        if done.returncode not in (0, 3):
            raise SystemExit(f"{name}: exit {done.returncode}: {done.stderr[-2000:]}")
        transforms[name] = [transform_io.read_transform(out / f"p{k}.tfm") for k in range(args.pairs)]
        results.append((name, seconds, 60.0 * args.pairs / seconds))
    first = next(iter(transforms.values()))
    spread = max(np.abs(a - b).max() for found in transforms.values() for a, b in zip(found, first))
    base = results[0][2]
    print("| executor | wall time (s) | pairs per minute | vs first |\n|---|---|---|---|")
    for name, seconds, rate in results:
        print(f"| {name} | {seconds:.1f} | {rate:.1f} | {rate / base:.2f}x |")
    print(f"largest difference between the executors' transforms: {spread:.2e}")


if __name__ == "__main__":
    main()
