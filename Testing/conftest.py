"""Shared fixtures: the embedded phantom, a tiny training set and the path of ../shared/data."""

from pathlib import Path

import pytest

SHARED_DATA = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data").resolve()


def shared_file(relative: str) -> Path:
    """A file of ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    return path


@pytest.fixture(scope="session")
def phantom_pair():
    from HeadRegistrationLib.data import phantom
    return phantom.make_phantom_pair(seed=3, rotation_deg=12.0, translation_mm=8.0)


TINY_SET = {"copies": 4, "seed": 0, "grid_size": [16, 16, 16], "grid_spacing_mm": 16.0, "max_angle_deg": 15.0,
            "max_shift_mm": 5.0, "center_jitter_mm": 5.0}


@pytest.fixture(scope="session")
def tiny_set(tmp_path_factory):
    """A training set of three phantom subjects, 4 copies each, on a 16^3 grid at 16 mm."""
    from HeadRegistrationLib.data import dataset
    folder = tmp_path_factory.mktemp("tiny")
    dataset.build(folder, dataset.phantom_subjects(3), TINY_SET)
    return folder
