"""Blind A/B review of two sets of registrations of the same pairs, after the paper's
radiologist study (Results, "Generation of ground truth data": axial, sagittal and coronal
slices of each pair registered with and without symmetry alignment, shown as methods A and
B in random allocation; the assessor chose A, B or Both).

The first folder is a ground-truth batch (``headreg groundtruth --pairs ... --out DIR``:
``<id>.json`` records naming the fixed and moving files, and ``<id>.tfm``); the second holds
``<id>.tfm`` for the same ids (another batch, e.g. ``--no-symmetry``, or predictions). Each
pair is shown as results "A" and "B" in an order drawn from the pair id and a seed, so a
resumed review shows the same order. Answers go to a CSV, rewritten whole after each answer.
Pure Python: the Slicer module's review panel calls it.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..core.errors import HeadRegError
from ..core.files import write_atomically

ANSWERS = ("A", "B", "Both")
COLUMNS = ("id", "shown_as_a", "shown_as_b", "answer", "preferred", "answered_at")


@dataclass(frozen=True)
class ReviewPair:
    """One pair to review: its volumes and the two transforms (first folder, second folder)."""

    id: str
    fixed: Path
    moving: Path
    transforms: tuple[Path, Path]


def folder_labels(first_folder, second_folder) -> tuple[str, str]:
    """Names for the two folders in the answers: their own names, or full paths when equal."""
    first, second = Path(first_folder).resolve(), Path(second_folder).resolve()
    return (first.name, second.name) if first.name != second.name else (str(first), str(second))


def find_pairs(first_folder, second_folder) -> list[ReviewPair]:
    """The pairs with a successful record and a transform in the ground-truth batch
    ``first_folder`` and a transform of the same id in ``second_folder``, by id."""
    first, second = Path(first_folder).resolve(), Path(second_folder).resolve()
    for folder in (first, second):
        if not folder.is_dir():
            raise HeadRegError(f"{folder} is not a folder")
    if first == second:
        raise HeadRegError("the two folders are the same: choose two sets of results to compare")
    pairs = []
    for record_path in sorted(first.glob("*.json")):
        try:
            record = json.loads(record_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue  # not a pair record (a summary or a stray file)
        if not isinstance(record, dict) or record.get("status") != "ok" or not {"fixed", "moving"} <= set(record):
            continue
        pair_id = record_path.stem
        transforms = (first / f"{pair_id}.tfm", second / f"{pair_id}.tfm")
        if all(path.is_file() for path in transforms):
            pairs.append(ReviewPair(pair_id, Path(record["fixed"]), Path(record["moving"]), transforms))
    if not pairs:
        raise HeadRegError(f"no pair has both a ground-truth record (<id>.json, <id>.tfm) in {first} "
                           f"and a transform <id>.tfm in {second}")
    return pairs


def review_order(pairs: list[ReviewPair], seed: int = 0) -> list[ReviewPair]:
    """The pairs in a random order drawn from their ids and ``seed`` (the same in every
    session), so that reviewing only the first n is a random sample of n."""
    return sorted(pairs, key=lambda pair: hashlib.sha256(f"order/{seed}/{pair.id}".encode()).digest())


def first_is_a(pair_id: str, seed: int = 0) -> bool:
    """Whether the first folder's result is shown as "A" for this pair: a fair coin drawn
    from the id and ``seed``, the same in every session."""
    return hashlib.sha256(f"{seed}/{pair_id}".encode()).digest()[0] % 2 == 0


def read_answers(path) -> dict[str, dict]:
    """The answers saved so far, by pair id; none when the file does not exist yet."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            fields = reader.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise HeadRegError(f"cannot read the answers in {path}: {error}") from None
    if tuple(fields) != COLUMNS:
        raise HeadRegError(f"{path} is not an answers file (expected the columns {','.join(COLUMNS)})")
    for row in rows:
        if row["answer"] not in ANSWERS:
            raise HeadRegError(f"{path}: pair {row['id']} has the answer {row['answer']!r}, not one of {ANSWERS}")
    return {row["id"]: row for row in rows}


def record_answer(path, answers: dict, pair: ReviewPair, labels: tuple[str, str], answer: str,
                  seed: int = 0) -> dict[str, dict]:
    """Add (or replace) the answer for ``pair`` and rewrite the answers file whole, in one
    step; returns the new answers. ``answer`` is "A", "B" or "Both"; the file also names the
    folder shown as A and B and the one preferred ("both" for Both)."""
    if answer not in ANSWERS:
        raise HeadRegError(f"the answer must be one of {ANSWERS}, not {answer!r}")
    shown = labels if first_is_a(pair.id, seed) else labels[::-1]
    preferred = {"A": shown[0], "B": shown[1], "Both": "both"}[answer]
    row = {"id": pair.id, "shown_as_a": shown[0], "shown_as_b": shown[1], "answer": answer,
           "preferred": preferred, "answered_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    updated = {**answers, pair.id: row}

    def write(temporary):
        with open(temporary, "w", newline="") as handle:
            writer = csv.DictWriter(handle, COLUMNS)
            writer.writeheader()
            writer.writerows(updated.values())

    write_atomically(path, write)
    return updated


def next_pair(pairs: list[ReviewPair], answers: dict) -> ReviewPair | None:
    """The first pair without an answer, or None when all are answered."""
    return next((pair for pair in pairs if pair.id not in answers), None)


def summary(answers: dict, labels: tuple[str, str]) -> dict:
    """How often each folder's result was preferred, and how often both were good, in
    counts and percentages of the answered pairs (the paper's table of the expert study)."""
    counts = {labels[0]: 0, labels[1]: 0, "both": 0}
    for row in answers.values():
        counts[row["preferred"]] = counts.get(row["preferred"], 0) + 1
    total = len(answers)
    return {"answered": total, "counts": counts,
            "percent": {name: (100.0 * count / total if total else 0.0) for name, count in counts.items()}}


def summary_text(answers: dict, labels: tuple[str, str]) -> str:
    """One line per choice, e.g. "with-symmetry better: 12 of 20 (60.0 %)"."""
    result = summary(answers, labels)
    lines = [f"{name} better: {count} of {result['answered']} ({result['percent'][name]:.1f} %)"
             for name, count in result["counts"].items() if name != "both"]
    lines.append(f"both equally good: {result['counts']['both']} of {result['answered']} "
                 f"({result['percent']['both']:.1f} %)")
    return "\n".join(lines)
