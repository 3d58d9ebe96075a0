"""What the subcommands share: exit codes, the progress bar, reading a volume argument."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..core import volume_io
from ..core.errors import LOW_CONFIDENCE, HeadRegError



def progress_bar(total: int, description: str):
    """A progress bar on stderr (hidden when stderr is not a terminal and HEADREG_PROGRESS is unset)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit="step", file=sys.stderr, leave=False,
                disable=None if "HEADREG_PROGRESS" not in os.environ else False)


def read_volume(path: Path, args) -> sitk.Image:
    """A volume given on the command line; ``--series`` picks the series of a DICOM folder."""
    series = getattr(args, "series", None)
    if series and Path(path).is_dir():
        found = [uid for uid in series if uid in volume_io.series_in(path)]
        return volume_io.read_volume(path, found[0] if found else series[0])
    return volume_io.read_volume(path)


def add_series(parser) -> None:
    parser.add_argument("--series", action="append", metavar="UID",
                        help="the DICOM series to read from a folder that holds several (repeat for each folder)")


def grid(size, spacing, name) -> dict:
    """A phantom grid from --NAME-size and --NAME-spacing."""
    if any(n < 2 for n in size):
        raise HeadRegError(f"--{name}-size must be at least 2 voxels along each axis")
    if not all(np.isfinite(spacing)) or any(s <= 0 for s in spacing):
        raise HeadRegError(f"--{name}-spacing must be positive millimetres")
    if np.prod(size, dtype=float) > volume_io.MAX_VOXELS:
        raise HeadRegError(f"--{name}-size {size} is too large (more than {volume_io.MAX_VOXELS} voxels)")
    return {"size": tuple(size), "spacing": tuple(spacing)}


def batch_outcome(records: list[dict], skipped: int, out, retry_failed: bool, doubtful: int) -> int:
    """Say how a batch went (and which pairs failed) and return its exit code: 1 if any
    failed, else 3 if any is LOW CONFIDENCE, else 0."""
    failed = [r for r in records if r.get("status") != "ok"]
    print(f"{len(records) - len(failed)} pairs registered ({skipped} done before), {len(failed)} failed, "
          f"{doubtful} LOW CONFIDENCE; outputs and summary.csv in {out}")
    for r in failed:
        print(f"failed: {r['id']}: {r.get('error')}", file=sys.stderr)
    if failed and not retry_failed:
        print("failed pairs are skipped on a rerun; give --retry-failed to try them again", file=sys.stderr)
    return 1 if failed else LOW_CONFIDENCE if doubtful else 0


def print_warnings(warnings, prefix: str = "warning: ") -> None:
    for warning in warnings:
        print(f"{prefix}{warning}", file=sys.stderr)


def add_executor(parser) -> None:
    """--workers and --scheduler: where a batch's tasks run (``core.batch.run_tasks``)."""
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes (default 1: this process); with --scheduler local, the cluster's")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run the tasks on a Dask distributed scheduler (tcp://host:8786), or 'local' for a "
                             "LocalCluster of --workers processes")


def check_executor(args) -> None:
    if args.workers < 1:
        raise HeadRegError("--workers must be at least 1")
