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


def test_track_fills_any_frame_whose_landmarks_fail():
    from landmarks.errors import FaceTooSmall, ImageError, NoFaceFound
    from video_gen.drive import track

    pts = face_points(64)
    failures = {1: NoFaceFound("none"), 2: FaceTooSmall("tiny"), 4: ImageError("odd frame")}

    def detect(k):
        if k in failures:
            raise failures[k]
        return SimpleNamespace(points=pts + [k, 0])

    out = track(range(6), detect=detect)
    assert out.shape == (6, 68, 2) and np.isfinite(out).all()
    np.testing.assert_allclose(out[:, 0, 0] - pts[0, 0], [0, 1, 2, 3, 4, 5], atol=1e-4)  # gaps interpolated
    with pytest.raises(DriveError, match="only 2 of the driving video's 10 frames.*tiny"):
        track(range(10), detect=lambda k: SimpleNamespace(points=pts) if k in (0, 9) else detect(2))


def test_drive_resamples_to_the_asked_frames_and_fps():
    img, pts = textured(64), face_points(64)
    seq = [pts + [np.sin(k / 8 * 2 * np.pi), 0] for k in range(9)]  # one loop: frame 8 is frame 0
    calls = iter(range(100))

    def detect(_frame):
        return SimpleNamespace(points=seq[next(calls) % 9])

    anim = drive(img, pts, [img] * 9, fps=6, detect=detect)
    assert len(anim) == 9 and anim.fps == 6  # the clip as it is
    anim = drive(img, pts, [img] * 9, fps=6, frames=4, detect=detect)
    assert len(anim) == 4 and anim.fps == 6 and anim.points.shape == (4, 68, 2)
    anim = drive(img, pts, [img] * 9, frames=16, detect=detect)  # spread over the clip's 8-frame loop at 12 fps
    assert len(anim) == 16 and anim.fps == pytest.approx(24.0)
    with pytest.raises(DriveError, match="frames must be between 2 and 240"):
        drive(img, pts, [img] * 9, frames=1, detect=detect)
