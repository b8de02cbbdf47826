from types import SimpleNamespace

import numpy as np
import pytest
from vg_helpers import face_points, textured

from video_gen.drive import DriveError, drive, retarget
from video_gen.geometry import FaceFrame
from video_gen.prior import sample_sequence


def test_retarget_moves_the_still_like_the_driver_in_its_own_geometry():
    drv = face_points(200)
    still = face_points(64)
    d = sample_sequence("surprised", frames=8, rng=0)
    driving = drv[None] + FaceFrame.from_points(drv).vectors_to_pixels(d)
    out = retarget(driving, still, smooth_sigma=0)
    want = still[None] + FaceFrame.from_points(still).vectors_to_pixels(d)
    assert out.shape == (9, 68, 2)
    assert np.abs(out - want).max() < 0.05 * 16  # within 5 % of an eye distance (16 px here)
    assert np.abs(out[-1] - out[0]).max() < 1e-4  # loop closed


def test_drive_with_an_injected_detector_and_missing_faces():
    from landmarks.errors import NoFaceFound

    img, pts = textured(64), face_points(64)
    seq = [pts + [k * 0.3, 0] for k in range(6)]
    calls = iter(range(6))

    def detect(_frame):
        k = next(calls)
        if k == 2:
            raise NoFaceFound("none")
        return SimpleNamespace(points=seq[k])

    anim = drive(img, pts, [img] * 6, fps=6, detect=detect)
    assert len(anim) == 6 and anim.points.shape == (6, 68, 2)
    with pytest.raises(DriveError):
        drive(img, pts, [img] * 3, detect=lambda f: (_ for _ in ()).throw(NoFaceFound("x")))


def test_alpha_matte_separates_the_person(samples_dir):
    import landmarks
    from video_gen.matte import alpha_matte

    img = landmarks.load_image(samples_dir / "grace_hopper.jpg")
    a = alpha_matte(img)
    assert a.shape == img.shape[:2] and a.dtype == np.float32 and 0 <= a.min() and a.max() <= 1
    h, w = a.shape
    assert a[h // 2, w // 2] > 0.9  # the face
    assert a[5, 5] < 0.1  # the flag behind her
