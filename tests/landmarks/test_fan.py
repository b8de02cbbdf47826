"""The 2D-FAN adapter, tested offline: a stub network with FAN's output shape and face-alignment's own utils."""
import numpy as np
import pytest
import torch

from landmarks import WeightsError, detect, detect_all
from landmarks import backend_fan as fan
from landmarks.detect import get_detector


def _heatmaps(points64: np.ndarray, size: int = 64, sigma: float = 1.5) -> np.ndarray:
    """``[68,size,size]`` Gaussian blobs centred at ``points64 [68,2]`` (cell centres at integers)."""
    yy, xx = np.mgrid[:size, :size]
    return np.stack([np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2)) for x, y in points64]).astype(np.float32)


class StubFAN(torch.nn.Module):
    """FAN's interface: ``[B,3,256,256]`` in [0,1] → a list of ``[B,68,64,64]`` heat maps (fixed blobs)."""

    def __init__(self, points64):
        super().__init__()
        self.register_buffer("hm", torch.from_numpy(_heatmaps(points64)))
        self.seen = []

    def forward(self, x):
        self.seen.append((tuple(x.shape), float(x.min()), float(x.max())))
        return [self.hm.expand(x.shape[0], -1, -1, -1) * 0.5, self.hm.expand(x.shape[0], -1, -1, -1)]


@pytest.fixture(scope="module")
def points64():
    rng = np.random.default_rng(0)
    return rng.uniform(8, 56, (68, 2))


def test_decode_matches_face_alignment(points64, monkeypatch):
    fa_utils = pytest.importorskip("face_alignment.utils")
    # face-alignment's own decoding, run as plain Python (its numba compile takes ~10 s)
    monkeypatch.setattr(fa_utils, "transform_np", getattr(fa_utils.transform_np, "py_func", fa_utils.transform_np))
    decode = getattr(fa_utils._get_preds_fromhm, "py_func", fa_utils._get_preds_fromhm)
    hm = _heatmaps(points64)
    center, scale = np.array([240.0, 130.0]), 0.62
    ours, scores = fan.decode_heatmaps(hm, center, scale)
    idx = hm.reshape(1, 68, -1).argmax(-1)
    _, ref = decode(hm[None], idx, center, scale)
    assert ours.shape == (68, 2) and scores.shape == (68,)
    assert np.abs(ours - ref[0]).max() <= 1.0  # the reference truncates to whole pixels
    # and the decoded points sit where the blobs are, within a quarter cell (in original pixels)
    cell = 200 * scale / 64
    expected = (points64 + 0.5) / 64 * 200 * scale - 100 * scale + center
    assert np.abs(ours - expected).max() <= 0.3 * cell


def test_crop_matches_face_alignment(astronaut):
    fa_utils = pytest.importorskip("face_alignment.utils")
    import cv2

    center, scale = fan.crop_params((180.0, 80.0, 280.0, 180.0))
    ref = fa_utils.crop(astronaut, center, scale).astype(float)
    ours = cv2.warpAffine(astronaut, fan.crop_matrix(center, scale), (256, 256), flags=cv2.INTER_LINEAR).astype(float)
    assert np.abs(ours - ref).mean() < 4.0


def test_stub_network_end_to_end(astronaut, points64):
    stub = StubFAN(points64)
    det = fan.FanDetector(network=stub)
    faces = det(astronaut)
    assert len(faces) == 1
    f = faces[0]
    assert f.backend == "fan" and f.mesh is None and f.points.shape == (68, 2)
    assert stub.seen == [((1, 3, 256, 256), stub.seen[0][1], stub.seen[0][2])]
    assert 0.0 <= stub.seen[0][1] < stub.seen[0][2] <= 1.0
    box = det.boxes(astronaut)[0][0]
    center, scale = fan.crop_params(box)
    np.testing.assert_allclose(f.points, fan.decode_heatmaps(_heatmaps(points64), center, scale)[0], atol=1e-4)


def test_missing_weights_say_how_to_get_them(tmp_path, monkeypatch, samples_dir):
    monkeypatch.delenv("EMOGET_FAN_WEIGHTS", raising=False)
    monkeypatch.setattr(fan, "default_weights_path", lambda: tmp_path / "hub" / fan.FAN_FILE)
    with pytest.raises(WeightsError, match="2DFAN4.*adrianbulat.com.*--backend mediapipe"):
        get_detector("fan")
    with pytest.raises(WeightsError):
        detect(np.zeros((64, 64, 3), np.uint8), backend="fan")

    from ui.cli import main

    assert main(["landmarks", str(samples_dir / "astronaut.png"), "--backend", "fan"]) == 2


def test_weights_found_and_checked(tmp_path, monkeypatch):
    bad = tmp_path / "junk.pth.tar"
    bad.write_bytes(b"not a checkpoint")
    monkeypatch.setenv("EMOGET_FAN_WEIGHTS", str(bad))
    assert fan.find_weights() == bad
    assert fan.find_weights(tmp_path / "nope.tar") == bad  # a missing explicit path falls through
    with pytest.raises(WeightsError, match="cannot read"):
        fan.load_fan(bad)
    wrong = tmp_path / "wrong.pth.tar"
    torch.save({"conv.weight": torch.zeros(1)}, wrong)
    with pytest.raises(WeightsError, match="not a 2D-FAN-4"):
        fan.load_fan(wrong)


def test_fan_registered_by_name(astronaut, points64):
    from landmarks.detect import register_backend

    stub = StubFAN(points64)
    register_backend("fan", lambda: fan.FanDetector(network=stub))
    try:
        assert detect_all(astronaut, backend="fan")[0].backend == "fan"
    finally:
        register_backend("fan", "landmarks.backend_fan:FanDetector")
