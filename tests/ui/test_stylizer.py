"""The pipeline's GAN adapter on a toy conditional generator (16 px, few channels)."""
import numpy as np
import pytest
import torch

from face2emoticon.checkpoint import save_generator
from face2emoticon.config import GeneratorConfig
from face2emoticon.networks import Generator
from ui.pipeline import GanStylizer, OptionsError, load_stylizer


@pytest.fixture(scope="module")
def toy_g():
    cfg = GeneratorConfig(resolution=16, z_dim=16, w_dim=16, mapping_layers=2, channel_base=256, channel_max=16,
                          class_names=("plain", "fancy"))
    return Generator(cfg, seed=1)


def test_invert_then_render_every_style(toy_g):
    s = GanStylizer(toy_g)
    assert s.styles == ["plain", "fancy"] and s.resolution == 16
    with torch.no_grad():
        img = toy_g(torch.randn(1, 16, generator=torch.Generator().manual_seed(3)), torch.tensor([0]))
    crop = ((img[0].permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).byte().numpy()
    seen = []
    ws = s.invert(crop, seed=0, steps=3, progress=seen.append)
    assert ws.shape == (1, toy_g.num_ws, 16) and seen[-1] == 1.0
    again = s.invert(crop, seed=0, steps=3)
    assert torch.equal(ws, again), "same seed, same latent"
    a = s.render(ws, "plain", strength=0.0, size=32)
    b = s.render(ws, "fancy", strength=0.0, size=32)
    assert a.shape == b.shape == (32, 32, 3) and a.dtype == np.uint8 and not np.array_equal(a, b)
    # strength 1 is the style's mean face, whoever the person
    other = s.render(ws + 0.5, "fancy", strength=1.0, size=16)
    assert np.array_equal(other, s.render(ws, "fancy", strength=1.0, size=16))
    with pytest.raises(OptionsError):
        s.render(ws, "nope", strength=0.0, size=16)


def test_load_stylizer_from_a_path(toy_g, tmp_path):
    path = save_generator(toy_g, tmp_path / "g")
    s = load_stylizer(str(path))
    assert s.styles == ["plain", "fancy"]
    with pytest.raises(Exception, match="not found"):
        load_stylizer(str(tmp_path / "missing.safetensors"))
