"""Transparent backgrounds: flat backgrounds keyed out, photos segmented, one decision per clip."""
import numpy as np
import pytest
from scipy import ndimage

from video_gen.matte import (
    MatteError,
    alpha_matte,
    background_tolerance,
    flat_background,
    person_matte,
)

BG = (242, 242, 242)


def drawn_still(size=96, *, noise=0.0, seed=0):
    """A flat-background drawing: a face disc touching nothing, a body touching the bottom edge, and a
    hair patch one step off the background colour inside the head (must stay opaque)."""
    rng = np.random.default_rng(seed)
    img = np.empty((size, size, 3), np.float32)
    img[:] = BG
    yy, xx = np.mgrid[:size, :size]
    head = (yy - size * 0.4) ** 2 + (xx - size / 2) ** 2 < (size * 0.25) ** 2
    img[head] = (230, 180, 150)
    img[(yy > size * 0.8) & (abs(xx - size / 2) < size * 0.3)] = (40, 90, 160)
    hair = (yy - size * 0.32) ** 2 + (xx - size / 2) ** 2 < (size * 0.07) ** 2
    img[hair] = (236, 236, 236)  # near the background, but enclosed by the face
    if noise:
        img += rng.normal(0, noise, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), head, hair


@pytest.mark.parametrize("noise", [0.0, 3.0])
def test_flat_background_is_keyed_out_and_enclosed_lookalikes_stay(noise):
    img, head, hair = drawn_still(noise=noise)
    colour = flat_background(img)
    assert colour is not None and np.abs(colour.astype(int) - BG).max() <= 2
    a = alpha_matte(img)
    assert a.dtype == np.float32 and a.shape == img.shape[:2]
    assert a[2, 2] < 0.05 and a[2, -3] < 0.05  # corners: background
    inner = ndimage.binary_erosion(head, iterations=2)  # the face away from its feathered outline
    assert a[inner].min() > 0.95 and a[hair].min() > 0.95  # the face, and hair the background never reaches
    assert a[-1, img.shape[1] // 2] > 0.95  # the body on the bottom edge is kept
    assert background_tolerance(img, colour) >= 4


def test_a_clip_is_matted_one_way_throughout():
    clip = np.stack([drawn_still(noise=2.0, seed=s)[0] for s in range(3)])
    a = alpha_matte(clip)
    assert a.shape == clip.shape[:3]
    assert np.allclose(a[0], alpha_matte(clip[0]), atol=1e-6)
    assert np.abs(a[1] - a[0]).mean() < 0.02  # same drawing: the same cut-out, no flicker


def test_a_busy_border_is_no_flat_background_and_no_person_is_an_error():
    rng = np.random.default_rng(0)
    assert flat_background(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)) is None
    with pytest.raises(MatteError, match="no person"):
        person_matte(np.full((96, 96, 3), 90, np.uint8))
