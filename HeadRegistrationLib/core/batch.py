"""Batches of independent pair tasks: progress, resume, worker processes, failures recorded.

A task is a plain dict (paths and settings, JSON-ready) run by a top-level function that
writes its own outputs atomically and returns a JSON-ready record; nothing is shared
between tasks, so another engine (a cluster queue, Dask, Ray) can run the same tasks.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import sys
import traceback
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

import SimpleITK as sitk
from tqdm import tqdm

from .errors import HeadRegError, one_line
from .files import write_atomically

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def read_pairs(csv_path, columns=("fixed", "moving")) -> list[dict]:
    """Rows of a CSV with path ``columns`` (and an optional ``id``) as dicts with absolute
    paths (relative paths are taken from the CSV's folder) and unique, file-name-safe ids."""
    header = ",".join(columns) + "[,id]"
    csv_path = Path(csv_path)
    try:
        with open(csv_path, newline="") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            found = {name.strip() for name in reader.fieldnames or []}
    except OSError as error:
        raise HeadRegError(f"cannot read {csv_path}: {error.strerror}") from None
    except (csv.Error, UnicodeDecodeError) as error:
        raise HeadRegError(f"{csv_path} is not a readable CSV file: {error}") from None
    if not rows:
        raise HeadRegError(f"{csv_path} has no pairs (expected a header '{header}' and rows)")
    if not set(columns) <= found:
        raise HeadRegError(f"{csv_path} must have the columns {header}; it has {','.join(sorted(found))}")
    pairs, seen = [], set()
    for number, row in enumerate(rows, start=1):
        pair_id = (row.get("id") or "").strip() or f"pair{number:04d}"
        if not _SAFE_ID.match(pair_id):
            raise HeadRegError(f"{csv_path} row {number}: id {pair_id!r} must be letters, digits, '.', '_' or '-'")
        if pair_id in seen:
            raise HeadRegError(f"{csv_path} row {number}: id {pair_id!r} is used twice")
        seen.add(pair_id)
        paths = {}
        for column in columns:
            value = (row.get(column) or "").strip()
            if not value:
                raise HeadRegError(f"{csv_path} row {number}: the {column} column is empty")
            paths[column] = str((csv_path.parent / value).resolve())
        pairs.append({"id": pair_id, **paths})
    return pairs


def write_json(record: dict, path) -> None:
    write_atomically(path, lambda p: Path(p).write_text(json.dumps(record, indent=2) + "\n"))


def read_json(path) -> dict | None:
    """A record written by ``write_json``, or None if there is none (or it is unreadable)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _start_worker(threads: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)


def _guarded(task_function: Callable[[dict], dict], task: dict) -> dict:
    """Run one task; any failure becomes a record instead of stopping the batch."""
    try:
        return task_function(task)
    except (HeadRegError, OSError, RuntimeError, ValueError) as error:
        reason = one_line(error)
        return {**task, "status": "failed", "error": reason}
    except Exception as error:  # a bug: keep its traceback in the record, go on with the batch
        return {**task, "status": "failed", "error": f"{type(error).__name__}: {error}",
                "traceback": traceback.format_exc()}


def run_tasks(tasks: list[dict], task_function: Callable[[dict], dict], is_done: Callable[[dict], bool],
              workers: int = 1, description: str = "pairs", unit: str = "pair") -> tuple[list[dict], int]:
    """Run the tasks not yet done (``is_done``), ``workers`` at a time in separate
    processes, with a progress bar. Returns (records of the tasks run, number skipped)."""
    pending = [task for task in tasks if not is_done(task)]
    skipped = len(tasks) - len(pending)
    records = []
    bar = tqdm(total=len(pending), desc=description, unit=unit, file=sys.stderr,
               disable=None if "HEADREG_PROGRESS" not in os.environ else False)
    with bar:
        if workers <= 1:
            for task in pending:
                records.append(_guarded(task_function, task))
                bar.update(1)
        else:
            threads = max(1, (os.cpu_count() or 1) // workers)
            # A Ctrl-C reaches this process alone (workers ignore it) and leaving the block
            # terminates the workers at once; pairs already written stay done.
            with get_context("spawn").Pool(workers, _start_worker, (threads,)) as pool:
                for record in pool.imap_unordered(partial(_guarded, task_function), pending):
                    records.append(record)
                    bar.update(1)
    return records, skipped
