import numpy as np
import pytest


@pytest.fixture(scope="session")
def astronaut():
    from pathlib import Path

    from landmarks import load_image

    return load_image(Path(__file__).resolve().parents[2] / "samples" / "astronaut.png")


@pytest.fixture(scope="session")
def hopper():
    from pathlib import Path

    from landmarks import load_image

    return load_image(Path(__file__).resolve().parents[2] / "samples" / "grace_hopper.jpg")


@pytest.fixture(scope="session")
def astronaut_face(astronaut):
    from landmarks import detect

    return detect(astronaut)


@pytest.fixture(scope="session")
def two_faces(astronaut, hopper):
    """The astronaut (large) beside a half-size Grace Hopper on a grey canvas: ``uint8 [520,800,3]``."""
    import cv2

    small = cv2.resize(hopper, (hopper.shape[1] // 2, hopper.shape[0] // 2), interpolation=cv2.INTER_AREA)
    canvas = np.full((520, 800, 3), 128, np.uint8)
    canvas[4:516, 0:512] = astronaut
    canvas[100 : 100 + small.shape[0], 540 : 540 + small.shape[1]] = small
    return canvas
