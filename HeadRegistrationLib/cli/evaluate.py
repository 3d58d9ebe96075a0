"""``headreg evaluate``: register cases with known truth; the paper's metrics, TRE, success per bin."""

from __future__ import annotations

import sys
from pathlib import Path

from ..core import batch
from ..core.errors import HeadRegError
from ..evaluate import cases
from .common import LOW_CONFIDENCE, add_executor, check_executor


def add_parser(commands) -> None:
    p = commands.add_parser("evaluate", help="register cases with known truth; paper metrics, TRE, success per bin",
                            description="Register each case of CASES.csv (columns a,b,truth[,id]; truth an ITK "
                                        "transform MR -> CT or a RIRE .standard file; paths relative to the CSV), or "
                                        "N generated phantom pairs, and write per-case records, results.csv, "
                                        "summary.md/.csv (per initial-rotation bin) and tre.png into OUT.")
    p.add_argument("cases", type=Path, nargs="?", metavar="CASES.csv")
    p.add_argument("--phantoms", type=int, metavar="N", help="generate N phantom pairs (whole-head grids)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR")
    p.add_argument("--no-refine", action="store_true", help="evaluate without the MI refinement")
    p.add_argument("--retry-failed", action="store_true", help="run again the cases recorded as failed")
    add_executor(p)
    p.set_defaults(run=run)


def run(args) -> int:
    check_executor(args)
    if (args.cases is None) == (args.phantoms is None):
        raise HeadRegError("give a cases CSV (columns a,b,truth[,id]) or --phantoms N, not both")
    if args.phantoms is not None and args.phantoms < 1:
        raise HeadRegError(f"--phantoms must be at least 1, not {args.phantoms}")
    if args.out.exists() and not args.out.is_dir():
        raise HeadRegError(f"--out {args.out} exists and is not a folder")
    args.out.mkdir(parents=True, exist_ok=True)
    cases_csv = args.cases if args.cases is not None else cases.phantom_cases(args.phantoms, args.out)
    records = cases.evaluate_cases(batch.read_pairs(cases_csv, ("a", "b", "truth")), args.out, not args.no_refine,
                                   args.retry_failed, args.workers, args.scheduler)
    for record in records:
        if record["status"] != "ok":
            print(f"headreg evaluate: {record['id']}: error: {record['error']}", file=sys.stderr)
    text = cases.write_results(records, args.out)
    if text:
        print(text)
    succeeded = [r for r in records if r["status"] == "ok"]
    failed = len(records) - len(succeeded)
    doubtful = sum(not r["confident"] for r in succeeded)
    if failed:
        print(f"{failed} failed case(s) are recorded in {args.out}/cases/ and skipped on a rerun; "
              "give --retry-failed to try them again", file=sys.stderr)
    print(f"{len(succeeded)} cases evaluated, {failed} failed, {doubtful} LOW CONFIDENCE; wrote {args.out}/results.csv, "
          f"summary.md, summary.csv, tre.png")
    return 1 if failed else LOW_CONFIDENCE if doubtful else 0
