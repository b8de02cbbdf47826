"""Figures for landmark-motion sequences: recognisability, diversity, smoothness, loop closure.

All distances are in pixels of a 256 px FFHQ-style aligned crop, where one face unit
(the eye-centre distance) is about 64 px (the FFHQ crop spans four eye distances).
Sequences are ``[N,T+1,68,2]`` displacements in face units with row T closing the loop.
"""
from __future__ import annotations

import itertools

import numpy as np

PX_PER_UNIT_256 = 64.0


def jerk(disp: np.ndarray) -> float:
    """Mean magnitude of the third temporal difference per point per frame (px/frame³ at 256 px), periodic."""
    d = np.asarray(disp, np.float64)[:, :-1] * PX_PER_UNIT_256  # drop the closing duplicate row
    j = np.roll(d, -2, 1) - 3 * np.roll(d, -1, 1) + 3 * d - np.roll(d, 1, 1)
    return float(np.linalg.norm(j, axis=-1).mean())


def loop_closure(disp: np.ndarray) -> np.ndarray:
    """Per sequence: the largest point distance between the loop's first and closing rows (px at 256)."""
    d = np.asarray(disp, np.float64)
    return np.linalg.norm(d[:, -1] - d[:, 0], axis=-1).max(-1) * PX_PER_UNIT_256


def diversity(groups: list[np.ndarray]) -> float:
    """Mean pairwise distance (px at 256, mean over points and frames) between takes within each group.

    ``groups``: list of ``[K,T+1,68,2]``, each K takes of the same expression, face and intensity.
    """
    out = []
    for g in groups:
        for a, b in itertools.combinations(range(len(g)), 2):
            out.append(np.linalg.norm(g[a] - g[b], axis=-1).mean() * PX_PER_UNIT_256)
    return float(np.mean(out)) if out else 0.0


def amplitude(disp: np.ndarray) -> float:
    """Mean point displacement (px at 256) — how much is moving at all."""
    return float(np.linalg.norm(np.asarray(disp), axis=-1).mean() * PX_PER_UNIT_256)
