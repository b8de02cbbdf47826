"""The expression prior moves a face the way each expression should, on the mean face and on a real photo's.

(That every take starts and ends on the neutral face is tested with the motion model, in test_motion.py.)

Positions are compared in each frame's own face frame (eye-centre distance = 1, y down), so the
head's roll, shift and scale are taken out and only the expression is left.
"""
from pathlib import Path

import numpy as np
import pytest
from vg_helpers import face_points

from video_gen.animate import motion_sequence
from video_gen.eyes import eye_opening
from video_gen.geometry import FaceFrame
from video_gen.mouth import lip_gap, mouth_width
from video_gen.prior import load_basis, sample_sequence

SEEDS = range(4)
BROWS, CORNERS = slice(17, 27), [48, 54]  # iBUG: 48 = the subject's right mouth corner (image left)


def _units(points: np.ndarray) -> np.ndarray:
    """``[...,68,2]`` pixels → each face in its own frame."""
    return np.stack([FaceFrame.from_points(p).to_unit(p) for p in np.reshape(points, (-1, 68, 2))])


@pytest.fixture(scope="module", params=["mean face", "photo"])
def rest(request):
    """Landmarks ``[68,2]`` px of a face at rest: the prior's mean face, or a sample photo's aligned crop."""
    if request.param == "mean face":
        return face_points(256)
    import landmarks

    photo = landmarks.load_image(Path(__file__).resolve().parents[2] / "samples" / "grace_hopper.jpg")
    return landmarks.align(photo, landmarks.detect(photo).points, size=256).points


def _take(rest, expression, seed):
    """``(rest [68,2], frames [T,68,2])`` in face units for one looping take of ``expression`` from the prior."""
    seq = motion_sequence(rest, expression=expression, frames=24, seed=seed, source="prior")
    return _units(rest)[0], _units(seq)


def _apex(r, u):
    """The frame of ``u`` farthest from rest in the brows and mouth."""
    moved = np.linalg.norm(u[:, np.r_[17:27, 48:68]] - r[np.r_[17:27, 48:68]], axis=-1).mean(1)
    return u[int(np.argmax(moved))]


def _opening(u, eye):
    return np.array([eye_opening(p, eye) for p in u])


@pytest.mark.parametrize("seed", SEEDS)
def test_happy_raises_and_widens_the_mouth_corners(rest, seed):
    r, u = _take(rest, "happy", seed)
    a = _apex(r, u)
    assert (a[CORNERS, 1] < r[CORNERS, 1] - 0.05).all()  # both corners up, by 5 % of the eye distance
    assert mouth_width(a) > mouth_width(r) + 0.01


@pytest.mark.parametrize("seed", SEEDS)
def test_surprised_opens_the_mouth_and_raises_the_brows(rest, seed):
    r, u = _take(rest, "surprised", seed)
    a = _apex(r, u)
    assert a[66, 1] - a[62, 1] > r[66, 1] - r[62, 1] + 0.1  # inner lips part
    assert lip_gap(a) > lip_gap(r) + 0.1
    assert a[BROWS, 1].mean() < r[BROWS, 1].mean() - 0.1


@pytest.mark.parametrize("seed", SEEDS)
def test_sad_lowers_the_mouth_corners(rest, seed):
    r, u = _take(rest, "sad", seed)
    a = _apex(r, u)
    assert (a[CORNERS, 1] > r[CORNERS, 1] + 0.02).all()


@pytest.mark.parametrize("seed", SEEDS)
def test_wink_closes_the_subjects_left_eye_only(rest, seed):
    r, u = _take(rest, "wink", seed)
    left = _opening(u, "left") / eye_opening(r, "left")  # iBUG 42-47, the image's right
    right = _opening(u, "right") / eye_opening(r, "right")
    assert left.min() < 0.4
    assert right.min() > 0.85


@pytest.mark.parametrize("seed", SEEDS)
def test_neutral_blinks_both_eyes_together(rest, seed):
    r, u = _take(rest, "neutral", seed)
    left = _opening(u, "left") / eye_opening(r, "left")
    right = _opening(u, "right") / eye_opening(r, "right")
    k = int(np.argmin(left))
    assert left[k] < 0.5 and right[k] < 0.5


def _corner_lifts(asymmetry, seed):
    """Upward movement of the subject's right (48) and left (54) mouth corners at the peak of a smile."""
    face = load_basis().neutral.astype(np.float64)
    d = sample_sequence("happy", frames=24, rng=seed, asymmetry=asymmetry)
    r, u = _units(face)[0], _units(face[None] + d)
    lift = r[CORNERS, 1] - u[:, CORNERS, 1]
    return lift[int(np.argmax(lift.sum(1)))]


@pytest.mark.parametrize("seed", SEEDS)
def test_asymmetry_favours_one_side(seed):
    right, left = _corner_lifts(0.3, seed)
    assert right > 1.3 * left > 0
    right, left = _corner_lifts(-0.3, seed)
    assert left > 1.3 * right > 0
    right, left = _corner_lifts(0.0, seed)
    assert abs(right - left) < 0.15 * max(right, left)


def test_asymmetry_is_drawn_per_take_by_default():
    ratios = [np.divide(*_corner_lifts(None, seed)) for seed in range(8)]
    assert np.ptp(ratios) > 0.1
