import pytest
from vg_helpers import face_points, textured


@pytest.fixture
def face64():
    """A smooth 64 px test image and the prior's mean face placed on it."""
    return textured(64), face_points(64)
