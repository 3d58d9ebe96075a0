"""``headreg batch register``: register every pair of a CSV (columns a,b[,id], any order of
CT and MR), here, in local worker processes or on a Dask cluster; resumable, never stopped
by one pair, with a summary.csv."""

from __future__ import annotations

from pathlib import Path

from ..core import batch
from ..core.errors import HeadRegError
from ..core.files import write_csv
from ..register import pairs
from .common import LOW_CONFIDENCE, add_executor, batch_outcome, check_executor


def add_parser(commands) -> None:
    p = commands.add_parser("batch", help="run a command on every pair of a CSV (batch register)",
                            description="Batches of pairs: 'register' registers every pair of PAIRS.csv.")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    r = actions.add_parser("register", help="register every pair of a CSV (columns a,b[,id])",
                           description="Register every pair of PAIRS.csv (columns a,b[,id]; paths relative to the "
                                       "CSV; CT and MR in any order) as `headreg register` does, writing per pair "
                                       "<id>.tfm, <id>.report.json, <id>.json (the record) and with --qa/--resampled "
                                       "<id>.png/<id>.resampled.nii.gz into OUT, then summary.csv (roles, confidence, "
                                       "time, exit status per pair). Pairs already done are skipped.")
    r.add_argument("pairs", type=Path, metavar="PAIRS.csv")
    r.add_argument("--out", type=Path, required=True, metavar="DIR")
    r.add_argument("--qa", action="store_true", help="also write a three-plane overlay per pair")
    r.add_argument("--resampled", action="store_true", help="also write the moving volume resampled onto the fixed")
    r.add_argument("--no-refine", action="store_true", help="skip the MI refinement")
    r.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where the networks run")
    r.add_argument("--model", type=Path, metavar="DIR", help="folder of the models (default: the shipped ones)")
    r.add_argument("--retry-failed", action="store_true", help="run again the pairs recorded as failed")
    add_executor(r)
    r.set_defaults(run=run)


def run(args) -> int:
    check_executor(args)
    tasks = [{**pair, "out": str(args.out.resolve()), "refine": not args.no_refine, "device": args.device,
              "model": None if args.model is None else str(args.model.resolve()), "qa": args.qa,
              "resampled": args.resampled, "retry_failed": args.retry_failed}
             for pair in batch.read_pairs(args.pairs, ("a", "b"))]
    if args.out.exists() and not args.out.is_dir():
        raise HeadRegError(f"--out {args.out} exists and is not a folder")
    args.out.mkdir(parents=True, exist_ok=True)
    for leftover in args.out.glob(".*.partial.*"):  # from an interrupted run
        leftover.unlink()
    _, skipped = batch.run_tasks(tasks, pairs.run_pair, pairs.pair_done, args.workers, scheduler=args.scheduler)
    records = batch.read_records(tasks, lambda t: pairs.pair_outputs(t)["record"])
    write_csv(args.out / "summary.csv", pairs.SUMMARY_COLUMNS, pairs.summary_rows(records))
    doubtful = sum(r.get("exit_status") == LOW_CONFIDENCE for r in records)
    return batch_outcome(records, skipped, args.out, args.retry_failed, doubtful)
