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


COMPARE_SET = {**TINY_SET, "copies": 2, "grid_size": [64, 64, 64], "grid_spacing_mm": 4.0}   # the shipped grid


def _phantom_set(tmp_path_factory, name: str, settings: dict):
    """A training set of three phantom subjects (train, validation, test)."""
    from HeadRegistrationLib.data import dataset
    folder = tmp_path_factory.mktemp(name)
    dataset.build(folder, dataset.phantom_subjects(3), settings)
    return folder


@pytest.fixture(scope="session")
def tiny_set(tmp_path_factory):
    """Three phantom subjects, 4 copies each, on a 16^3 grid at 16 mm."""
    return _phantom_set(tmp_path_factory, "tiny", TINY_SET)


@pytest.fixture(scope="session")
def compare_set(tmp_path_factory):
    """Three phantom subjects, two copies each, on the shipped 64^3 grid at 4 mm (the compared networks' input)."""
    return _phantom_set(tmp_path_factory, "compare", COMPARE_SET)
