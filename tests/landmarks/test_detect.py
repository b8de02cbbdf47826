import cv2
import numpy as np
import pytest

from landmarks import (
    EmogetError,
    FaceLandmarks,
    FaceTooSmall,
    NoFaceFound,
    detect,
    detect_all,
    get_detector,
)
from landmarks.detect import BACKENDS, MIN_INTER_OCULAR_PX, Detector, register_backend
from landmarks.mesh68 import IBUG68_REGIONS


def _inside(points, box, tol=0.0):
    x0, y0, x1, y1 = box
    return bool(((points[:, 0] >= x0 - tol) & (points[:, 0] <= x1 + tol)
                 & (points[:, 1] >= y0 - tol) & (points[:, 1] <= y1 + tol)).all())


@pytest.mark.parametrize("name", ["astronaut", "hopper"])
def test_sample_photos_one_face_points_in_box(request, name):
    image = request.getfixturevalue(name)
    faces = detect_all(image)
    assert len(faces) == 1
    f = faces[0]
    assert isinstance(f, FaceLandmarks) and f.backend == "mediapipe"
    assert f.points.shape == (68, 2) and f.points.dtype == np.float32
    assert f.mesh is not None and f.mesh.shape == (478, 3)
    assert 0.5 < f.score <= 1.0
    x0, y0, x1, y1 = f.box
    assert 0 <= x0 < x1 <= image.shape[1] and 0 <= y0 < y1 <= image.shape[0]
    assert _inside(f.points, f.box)
    assert f.inter_ocular > MIN_INTER_OCULAR_PX
    # the box is a face box, not the whole photo
    assert (x1 - x0) * (y1 - y0) < 0.5 * image.shape[0] * image.shape[1]


def test_ordering_and_left_right(astronaut_face):
    p = astronaut_face.points
    reg = {k: p[list(r)] for k, r in IBUG68_REGIONS.items()}
    # subject's right eye (36-41) and brow (17-21) appear on the image's left in a frontal photo
    assert p[36:42, 0].mean() < p[42:48, 0].mean()
    assert p[17:22, 0].mean() < p[22:27, 0].mean()
    assert p[0, 0] < p[8, 0] < p[16, 0]
    assert p[36, 0] < p[39, 0] < p[42, 0] < p[45, 0]
    assert p[48, 0] < p[54, 0]
    assert reg["brows"][:, 1].mean() < reg["eyes"][:, 1].mean() < p[33, 1] < reg["mouth"][:, 1].mean() < p[8, 1]
    assert p[27, 1] < p[28, 1] < p[29, 1] < p[30, 1]  # nose bridge runs downwards
    assert p[62, 1] <= p[66, 1]  # upper inner lip above the lower one
    # the mesh and the 68 points agree: the mesh nose tip is near iBUG 30
    assert np.linalg.norm(astronaut_face.mesh[4, :2] - p[30]) < 0.1 * astronaut_face.inter_ocular


def test_deterministic_and_cached(astronaut):
    a = detect(astronaut)
    b = detect(astronaut.copy())
    np.testing.assert_array_equal(a.points, b.points)
    assert a.box == b.box and a.score == b.score
    assert get_detector("mediapipe") is get_detector("mediapipe")
    # a freshly built detector gives the same answer, and so do concurrent calls on the cached one
    from concurrent.futures import ThreadPoolExecutor

    from landmarks.backend_mediapipe import MediaPipeDetector

    np.testing.assert_array_equal(MediaPipeDetector()(astronaut)[0].points, a.points)
    with ThreadPoolExecutor(3) as pool:
        for f in pool.map(lambda _: detect(astronaut), range(6)):
            np.testing.assert_array_equal(f.points, a.points)


def test_mirrored_photo_swaps_sides(astronaut, astronaut_face):
    flipped = np.ascontiguousarray(astronaut[:, ::-1])
    g = detect(flipped).points
    w = astronaut.shape[1]
    # mirroring the photo maps the subject's right eye onto the image's left again: labels stay anatomical
    assert g[36:42, 0].mean() < g[42:48, 0].mean()
    mirrored_right_eye = w - 1 - astronaut_face.points[42:48, 0].mean()
    assert abs(g[36:42, 0].mean() - mirrored_right_eye) < 0.1 * astronaut_face.inter_ocular


def test_no_face():
    from skimage import data

    with pytest.raises(NoFaceFound, match="no face"):
        detect(data.chelsea())  # a cat
    assert detect_all(np.full((120, 160, 3), 90, np.uint8)) == []


def test_several_faces(two_faces):
    faces = detect_all(two_faces)
    assert len(faces) == 2
    assert faces[0].area > faces[1].area
    assert faces[0].box[2] < 520 <= faces[1].box[0]  # largest = the astronaut on the left
    np.testing.assert_array_equal(detect(two_faces).points, faces[0].points)
    np.testing.assert_array_equal(detect(two_faces, face_index=1).points, faces[1].points)
    for f in faces:
        assert _inside(f.points, f.box)
    with pytest.raises(NoFaceFound, match="face index 2.*2 face"):
        detect(two_faces, face_index=2)


def test_face_too_small(astronaut):
    tiny = cv2.resize(astronaut, (128, 128), interpolation=cv2.INTER_AREA)  # eyes ~15 px apart
    faces = detect_all(tiny)
    assert len(faces) == 1 and faces[0].inter_ocular < MIN_INTER_OCULAR_PX
    with pytest.raises(FaceTooSmall, match="too small"):
        detect(tiny)
    assert detect(tiny, min_inter_ocular=0).inter_ocular < MIN_INTER_OCULAR_PX


def test_path_input_and_unknown_backend(samples_dir):
    f = detect(samples_dir / "astronaut.png")
    assert f.points.shape == (68, 2)
    with pytest.raises(EmogetError, match="unknown landmark backend"):
        detect(np.zeros((8, 8, 3), np.uint8), backend="nope")


class _TwoBoxes(Detector):
    """A back-end returning a small and a large face, smallest first."""

    name = "two-boxes"

    def find(self, image):
        grid = np.stack(np.meshgrid(np.linspace(0, 1, 17), np.linspace(0, 1, 4)), -1).reshape(-1, 2)
        small = FaceLandmarks(points=grid * 10, box=(0, 0, 10, 10), score=0.9, backend=self.name)
        big = FaceLandmarks(points=grid * 50 + 20, box=(20, 20, 70, 70), score=0.5, backend=self.name)
        return [small, big]


def test_custom_backend_registered_by_name_and_sorted_largest_first():
    register_backend("two-boxes", _TwoBoxes)
    try:
        faces = detect_all(np.zeros((80, 80, 3), np.uint8), backend="two-boxes")
        assert [f.box for f in faces] == [(20, 20, 70, 70), (0, 0, 10, 10)]
        assert detect(np.zeros((80, 80, 3), np.uint8), backend="two-boxes", face_index=1,
                      min_inter_ocular=0).box == (0, 0, 10, 10)
    finally:
        register_backend("two-boxes", _TwoBoxes)  # drops the cached instance
        BACKENDS.pop("two-boxes")


def test_dlib_reference_agrees(astronaut, astronaut_face):
    ref = detect(astronaut, backend="dlib")
    assert ref.backend == "dlib" and ref.mesh is None
    nme = np.linalg.norm(ref.points - astronaut_face.points, axis=1).mean() / ref.inter_ocular
    assert nme < 0.06
