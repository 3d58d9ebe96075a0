"""The blind A/B review's bookkeeping (HeadRegistrationLib.evaluate.review): pairs, allocation, answers."""

import json

import numpy as np
import pytest

from HeadRegistrationLib.core import geometry, transform_io
from HeadRegistrationLib.evaluate import review
from HeadRegistrationLib.core.errors import HeadRegError


def make_folders(tmp_path, ids=("p1", "p2", "p3")):
    """A ground-truth batch folder (records + transforms) and a second folder of transforms."""
    first, second = tmp_path / "with-symmetry", tmp_path / "without-symmetry"
    first.mkdir()
    second.mkdir()
    for k, pair_id in enumerate(ids):
        record = {"id": pair_id, "fixed": str(tmp_path / f"{pair_id}-mr.nii.gz"),
                  "moving": str(tmp_path / f"{pair_id}-ct.nii.gz"), "status": "ok"}
        (first / f"{pair_id}.json").write_text(json.dumps(record))
        transform_io.write_transform(geometry.rigid_matrix(np.eye(3), (k, 0, 0)), first / f"{pair_id}.tfm")
        transform_io.write_transform(np.eye(4), second / f"{pair_id}.tfm")
    return first, second


def test_pairs_need_a_record_and_both_transforms(tmp_path):
    first, second = make_folders(tmp_path, ("a", "b", "c", "d"))
    (second / "b.tfm").unlink()                                                    # no second result
    (first / "c.json").write_text(json.dumps({"status": "failed", "fixed": "x", "moving": "y"}))  # failed pair
    (first / "summary.json").write_text("[1, 2]")                                  # not a record
    (first / "broken.json").write_text("{")
    pairs = review.find_pairs(first, second)
    assert [p.id for p in pairs] == ["a", "d"]
    assert pairs[0].transforms == (first / "a.tfm", second / "a.tfm")
    assert pairs[0].fixed == tmp_path / "a-mr.nii.gz" and pairs[0].moving == tmp_path / "a-ct.nii.gz"
    assert review.folder_labels(first, second) == ("with-symmetry", "without-symmetry")


@pytest.mark.parametrize("case, message", [("same", "the same"), ("missing", "not a folder"),
                                           ("empty", "no pair")])
def test_bad_folders_are_refused(tmp_path, case, message):
    first, second = make_folders(tmp_path)
    if case == "same":
        second = first
    elif case == "missing":
        second = tmp_path / "nowhere"
    else:
        second = tmp_path / "empty"
        second.mkdir()
    with pytest.raises(HeadRegError, match=message):
        review.find_pairs(first, second)


def test_allocation_and_order_are_random_but_repeatable(tmp_path):
    ids = [f"pair{k:03d}" for k in range(400)]
    allocation = [review.first_is_a(i) for i in ids]
    assert allocation == [review.first_is_a(i) for i in ids]
    assert 0.4 < np.mean(allocation) < 0.6
    assert allocation != [review.first_is_a(i, seed=1) for i in ids]
    first, second = make_folders(tmp_path, [f"p{k}" for k in range(12)])
    pairs = review.find_pairs(first, second)
    order = review.review_order(pairs)
    assert sorted(p.id for p in order) == sorted(p.id for p in pairs) and order != pairs
    assert order == review.review_order(pairs)


def test_answers_are_saved_resumed_and_summarised(tmp_path):
    first, second = make_folders(tmp_path)
    pairs, labels = review.find_pairs(first, second), review.folder_labels(first, second)
    path = tmp_path / "answers.csv"
    answers = review.read_answers(path)
    assert answers == {} and review.next_pair(pairs, answers) == pairs[0]
    for pair, choice in zip(pairs, ("A", "B", "Both")):
        answers = review.record_answer(path, answers, pair, labels, choice)
    resumed = review.read_answers(path)
    assert resumed == answers and review.next_pair(pairs, resumed) is None
    for pair, choice in zip(pairs, ("A", "B")):
        shown = labels if review.first_is_a(pair.id) else labels[::-1]
        row = resumed[pair.id]
        assert (row["shown_as_a"], row["shown_as_b"]) == shown
        assert row["preferred"] == shown[0 if choice == "A" else 1]
    assert resumed["p3"]["preferred"] == "both"
    result = review.summary(resumed, labels)
    assert result["answered"] == 3 and sum(result["counts"].values()) == 3
    assert sum(result["percent"].values()) == pytest.approx(100.0)
    assert "both equally good: 1 of 3 (33.3 %)" in review.summary_text(resumed, labels)

    # A second answer for the same pair replaces the first.
    answers = review.record_answer(path, resumed, pairs[2], labels, "A")
    assert len(review.read_answers(path)) == 3 and review.read_answers(path)["p3"]["answer"] == "A"


def test_bad_answers_change_nothing(tmp_path):
    first, second = make_folders(tmp_path)
    pairs, labels = review.find_pairs(first, second), review.folder_labels(first, second)
    path = tmp_path / "answers.csv"
    review.record_answer(path, {}, pairs[0], labels, "B")
    before = path.read_bytes()
    with pytest.raises(HeadRegError, match="must be one of"):
        review.record_answer(path, review.read_answers(path), pairs[1], labels, "maybe")
    assert path.read_bytes() == before
    other = tmp_path / "other.csv"
    other.write_text("fixed,moving\na,b\n")
    with pytest.raises(HeadRegError, match="not an answers file"):
        review.read_answers(other)
    with pytest.raises(HeadRegError, match="does not exist"):
        review.record_answer(tmp_path / "no" / "answers.csv", {}, pairs[0], labels, "A")
