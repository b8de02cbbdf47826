from pathlib import Path

import numpy as np
import pytest

from landmarks.mesh68 import (
    IBUG68_REGIONS,
    MESH68_INDEX,
    MESH68_WEIGHT,
    MESH_TO_IBUG68,
    mesh_to_ibug68,
)

ASSET = Path(__file__).parent / "assets" / "astronaut_mesh.npz"


@pytest.fixture(scope="module")
def astronaut():
    z = np.load(ASSET)
    return z["mesh"], z["dlib68"]


def test_table_is_convex_and_in_range():
    assert len(MESH_TO_IBUG68) == 68
    for pairs in MESH_TO_IBUG68:
        assert 1 <= len(pairs) <= 3
        assert all(0 <= v < 468 and w > 0 for v, w in pairs)
        assert sum(w for _, w in pairs) == pytest.approx(1.0, abs=2e-3)
    assert MESH68_INDEX.shape == MESH68_WEIGHT.shape == (68, MESH68_INDEX.shape[1])
    assert sorted(i for r in IBUG68_REGIONS.values() for i in r) == list(range(68))


def test_shapes_batch_and_types(astronaut):
    mesh, _ = astronaut
    out = mesh_to_ibug68(mesh)
    assert out.shape == (68, 3) and out.dtype == np.float32
    batch = np.stack([mesh, mesh + 1.0])
    out2 = mesh_to_ibug68(batch)
    assert out2.shape == (2, 68, 3)
    np.testing.assert_allclose(out2[1], out + 1.0, atol=1e-3)  # convex weights: translation-equivariant
    np.testing.assert_allclose(mesh_to_ibug68(mesh[:468, :2]), out[:, :2], atol=1e-5)
    torch = pytest.importorskip("torch")
    t = mesh_to_ibug68(torch.from_numpy(batch))
    assert isinstance(t, torch.Tensor) and t.shape == (2, 68, 3)
    np.testing.assert_allclose(t.numpy(), out2, atol=1e-4)
    with pytest.raises(ValueError):
        mesh_to_ibug68(np.zeros((68, 2)))


def test_matches_dlib_reference_on_sample(astronaut):
    mesh, ref = astronaut
    pts = mesh_to_ibug68(mesh[:, :2])
    iod = np.linalg.norm(ref[45] - ref[36])
    err = np.linalg.norm(pts - ref, axis=1) / iod
    assert err.mean() < 0.06
    for region in ("eyes", "mouth"):
        assert err[list(IBUG68_REGIONS[region])].mean() < 0.04, region


def test_left_right_and_ordering(astronaut):
    mesh, _ = astronaut
    p = mesh_to_ibug68(mesh[:, :2])
    # frontal photo: the subject's right side (jaw 0, right eye 36-41, mouth corner 48) is on the image's left
    assert p[0, 0] < p[8, 0] < p[16, 0]
    assert p[36:42, 0].mean() < p[27:31, 0].mean() < p[42:48, 0].mean()
    assert p[36, 0] < p[39, 0] < p[42, 0] < p[45, 0]  # outer R, inner R, inner L, outer L
    assert p[48, 0] < p[51, 0] < p[54, 0]
    assert p[17:22, 0].mean() < p[22:27, 0].mean()
    # vertical order: brows above eyes above nose tip above mouth above chin
    assert p[17:27, 1].mean() < p[36:48, 1].mean() < p[30, 1] < p[48:68, 1].mean() < p[8, 1]
    # jaw runs down from the right ear to the chin, then up to the left ear
    assert np.all(np.diff(p[0:9, 1]) > 0) and np.all(np.diff(p[8:17, 1]) < 0)
    assert np.all(np.diff(p[2:15, 0]) > 0)
