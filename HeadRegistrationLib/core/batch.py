"""Batches of independent pair tasks: progress, resume, failures recorded, and one
executor for every batch (``batch register``, ``groundtruth --pairs``, ``evaluate``,
``dataset build``): this process, local worker processes, or a Dask distributed cluster.

A task is a plain dict (paths and settings, JSON-ready) run by a top-level function that
reads its inputs, writes its own outputs atomically and returns a JSON-ready record;
nothing is shared between tasks, so paths, not arrays, cross the wire, and an interrupted
batch keeps the tasks it finished.
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


def done_by_record(record_path, retry_failed: bool = False, outputs=()) -> bool:
    """Whether a task's record (written last) says it is done, so a resumed batch skips it:
    a success whose ``outputs`` all exist, or a failure when failures are not retried."""
    record = read_json(record_path)
    if not record:
        return False
    if record.get("status") != "ok":
        return not retry_failed
    return all(Path(path).exists() for path in outputs)


def read_records(tasks: list[dict], record_path: Callable[[dict], Path]) -> list[dict]:
    """Each task's record, or a "not run" one where it has none (e.g. its worker died)."""
    return [read_json(record_path(task)) or {**task, "status": "not run", "error": "not run"} for task in tasks]


def _start_worker() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _set_threads(threads: int) -> None:
    """ITK's and PyTorch's threads in a worker process (never called in the caller's own)."""
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


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


def _in_worker(task_function: Callable[[dict], dict], threads: int, task: dict) -> dict:
    _set_threads(threads)
    return _guarded(task_function, task)


def run_tasks(tasks: list[dict], task_function: Callable[[dict], dict], is_done: Callable[[dict], bool],
              workers: int = 1, description: str = "pairs", unit: str = "pair",
              scheduler: str | None = None) -> tuple[list[dict], int]:
    """Run the tasks not yet done (``is_done``) and return (records of the tasks run, number
    skipped). ``scheduler`` None: in this process (``workers`` 1) or in ``workers`` local
    processes; "local": on a Dask ``LocalCluster`` of ``workers`` processes; an address
    (tcp://host:8786): on that Dask scheduler's workers. Each worker keeps what its tasks
    load once (e.g. the models); a progress bar counts the tasks done and failed."""
    from tqdm import tqdm

    pending = [task for task in tasks if not is_done(task)]
    skipped = len(tasks) - len(pending)
    records = []
    bar = tqdm(total=len(pending), desc=description, unit=unit, file=sys.stderr,
               disable=None if "HEADREG_PROGRESS" not in os.environ else False)

    def finished(record):
        records.append(record)
        bar.update(1)
        failed = sum(r.get("status") == "failed" for r in records)
        if failed:
            bar.set_postfix_str(f"{failed} failed")
    threads = max(1, (os.cpu_count() or 1) // max(workers, 1))
    with bar:
        if scheduler is not None:
            # A cluster's workers keep the threads they were started with; a LocalCluster's
            # share this machine's cores.
            run = partial(_in_worker, task_function, threads) if scheduler == "local" else \
                partial(_guarded, task_function)
            _run_on_dask(pending, run, workers, scheduler, finished)
        elif workers <= 1:
            for task in pending:
                finished(_guarded(task_function, task))
        else:
            # A Ctrl-C reaches this process alone (workers ignore it) and leaving the block
            # terminates the workers at once; pairs already written stay done.
            with get_context("spawn").Pool(workers, _start_worker) as pool:
                for record in pool.imap_unordered(partial(_in_worker, task_function, threads), pending):
                    finished(record)
    return records, skipped


def _run_on_dask(pending: list[dict], run: Callable[[dict], dict], workers: int, scheduler: str,
                 finished: Callable[[dict], None]) -> None:
    """The tasks as independent Dask futures (``dask.distributed``), each record handed to
    ``finished`` as it arrives; a task whose worker died is recorded as failed. Leaving
    (also by Ctrl-C) cancels what has not run; what finished stays written."""
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ModuleNotFoundError as error:
        if error.name not in ("dask", "distributed"):
            raise
        raise HeadRegError("--scheduler needs Dask: pip install 'dask[distributed]' "
                           "(or pip install headregistration[cluster])") from None
    cluster = None
    try:
        if scheduler == "local":
            import dask

            # Dask's nannies give their workers MALLOC_TRIM_THRESHOLD_=65536, which turns every
            # large array into fresh pages from the kernel: registration ran 1.8x slower for it
            # (None unsets it: distributed.nanny._get_env_variables).
            with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
                cluster = LocalCluster(n_workers=max(workers, 1), threads_per_worker=1, processes=True,
                                       dashboard_address=None)
        client = Client(cluster if cluster is not None else scheduler, timeout="10s")
    except (OSError, TimeoutError, ValueError) as error:
        if cluster is not None:
            cluster.close()
        raise HeadRegError(f"cannot reach the Dask scheduler {scheduler}: {one_line(error)}") from None
    try:
        futures = {client.submit(run, task, pure=False): task for task in pending}
        for future in as_completed(futures):
            try:
                record = future.result()
            except Exception as error:   # the worker died or the task could not be sent: recorded, go on
                record = {**futures[future], "status": "failed", "error": one_line(error)}
            finished(record)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
