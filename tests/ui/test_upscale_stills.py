"""Stills larger than the generator's resolution go through the x4 upscaler (toy models), unless turned off."""
import argparse

import numpy as np
import pytest
import torch
from PIL import Image

from face2emoticon.config import GeneratorConfig
from face2emoticon.networks import Generator
from face2emoticon.upscale import UpscalerConfig, build, upscale
from ui.pipeline import (
    GanStylizer,
    RenderOptions,
    add_option_arguments,
    options_from_args,
)


@pytest.fixture(scope="module")
def toy():
    cfg = GeneratorConfig(resolution=16, z_dim=16, w_dim=16, mapping_layers=2, channel_base=256, channel_max=16,
                          class_names=("plain",))
    up = build(UpscalerConfig(channels=8, blocks=1, up_channels=(8, 8)), seed=0)
    with torch.no_grad():
        up.tail.weight.normal_(0, 0.05, generator=torch.Generator().manual_seed(1))
    return Generator(cfg, seed=1), up.eval()


def test_render_upscales_then_resizes(toy):
    G, up = toy
    ws = G.mapping(torch.randn(1, 16, generator=torch.Generator().manual_seed(0)), torch.tensor([0]))
    plain = GanStylizer(G)
    sharp = GanStylizer(G, upscaler=up)
    small = plain.render(ws, "plain", strength=0.0, size=16)
    lanczos = np.asarray(Image.fromarray(small).resize((48, 48), Image.Resampling.LANCZOS))
    assert np.array_equal(plain.render(ws, "plain", strength=0.0, size=48), lanczos)
    assert np.array_equal(sharp.render(ws, "plain", strength=0.0, size=48, upscale=False), lanczos)
    once = upscale(up, small)  # 16 -> 64, then Lanczos down to 48
    want = np.asarray(Image.fromarray(once).resize((48, 48), Image.Resampling.LANCZOS))
    assert np.array_equal(sharp.render(ws, "plain", strength=0.0, size=48), want)
    assert sharp.render(ws, "plain", strength=0.0, size=100).shape == (100, 100, 3)  # 16 -> 64 -> 256 -> 100
    assert np.array_equal(sharp.render(ws, "plain", strength=0.0, size=16), small)  # not larger: untouched


def test_upscale_is_on_by_default_and_the_cli_turns_it_off():
    parser = argparse.ArgumentParser()
    add_option_arguments(parser)
    assert RenderOptions().upscale and options_from_args(parser.parse_args([])).upscale
    assert not options_from_args(parser.parse_args(["--no-upscale"])).upscale
