"""Shared fixtures: the embedded phantom and the path of ../shared/data."""

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
