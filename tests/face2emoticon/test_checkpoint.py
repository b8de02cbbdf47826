import json

import pytest
import torch

from face2emoticon.checkpoint import (
    load_discriminator,
    load_generator,
    load_training_state,
    save_discriminator,
    save_generator,
    save_training_state,
)
from face2emoticon.config import DiscriminatorConfig, toy_config
from face2emoticon.networks import Discriminator, Generator
from landmarks.errors import WeightsError


def test_generator_round_trip(tmp_path):
    G = Generator(toy_config(), seed=7)
    path = save_generator(G, tmp_path / "g")
    assert path == tmp_path / "g.safetensors" and (tmp_path / "g.json").exists()
    assert json.loads((tmp_path / "g.json").read_text())["config"]["class_names"] == ["a", "b"]
    H = load_generator(tmp_path / "g.safetensors")
    assert H.cfg == G.cfg and not H.training
    for k, v in G.state_dict().items():
        assert torch.equal(v, H.state_dict()[k]), k
    z = torch.randn(2, 16, generator=torch.Generator().manual_seed(0))
    G.eval()
    assert torch.equal(G(z, torch.tensor([0, 1])), H(z, torch.tensor([0, 1])))
    assert load_generator(tmp_path / "g", dtype=torch.bfloat16).synthesis.b4.const.dtype == torch.bfloat16


def test_strict_load_refuses_other_config(tmp_path):
    save_generator(Generator(toy_config()), tmp_path / "g")
    data = json.loads((tmp_path / "g.json").read_text())
    data["config"]["channel_max"] = 16
    (tmp_path / "g.json").write_text(json.dumps(data))
    with pytest.raises(WeightsError, match="shape mismatch"):
        load_generator(tmp_path / "g")
    with pytest.raises(WeightsError, match="no config"):
        load_generator(tmp_path / "missing")


def test_no_temp_files_left(tmp_path):
    save_generator(Generator(toy_config()), tmp_path / "g")
    save_generator(Generator(toy_config(), seed=1), tmp_path / "g")  # overwrite in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.json", "g.safetensors"]


def test_discriminator_and_training_state_round_trip(tmp_path):
    cfg = toy_config()
    D = Discriminator(DiscriminatorConfig.matching(cfg))
    save_discriminator(D, tmp_path / "d")
    assert torch.equal(load_discriminator(tmp_path / "d").b4.fc.weight, D.b4.fc.weight)

    G = Generator(cfg)
    opt = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.0, 0.99))
    G(torch.randn(2, 16), torch.tensor([0, 1])).square().mean().backward()
    opt.step()
    save_training_state(tmp_path / "s.safetensors", modules={"G": G}, optimizers={"opt_G": (opt, G)},
                        rng={"torch": torch.get_rng_state()}, info={"step": 3})
    G2 = Generator(cfg, seed=9)
    opt2 = torch.optim.Adam(G2.parameters(), lr=5.0)
    rng, info = load_training_state(tmp_path / "s.safetensors", modules={"G": G2}, optimizers={"opt_G": (opt2, G2)})
    assert info["step"] == 3 and torch.equal(rng["torch"], torch.get_rng_state())
    assert opt2.param_groups[0]["lr"] == 1e-3 and opt2.param_groups[0]["betas"] == (0.0, 0.99)
    p, p2 = G.synthesis.b8.conv0.weight, G2.synthesis.b8.conv0.weight
    assert torch.equal(p, p2)
    assert torch.equal(opt.state[p]["exp_avg_sq"], opt2.state[p2]["exp_avg_sq"])
