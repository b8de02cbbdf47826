"""Inversion on a toy conditional StyleGAN2 (16 px, 32 channels)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from face2emoticon.config import GeneratorConfig
from face2emoticon.encoder import Encoder, EncoderConfig
from face2emoticon.invert import (
    face_mask,
    invert,
    load_latent,
    noise_buffers,
    noise_regularization,
    psnr,
)
from face2emoticon.lpips import lpips_distance
from face2emoticon.networks import Generator


def toy_generator(seed: int = 0) -> Generator:
    cfg = GeneratorConfig(resolution=16, z_dim=32, w_dim=32, mapping_layers=2, channel_base=256, channel_max=32,
                          class_names=("cat", "dog"))
    G = Generator(cfg, seed=seed)
    with torch.no_grad():  # give the noise inputs some weight, as a trained generator has
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.1)
    return G.eval()


@pytest.fixture(scope="module")
def G():
    return toy_generator()


def _sample(G, seed: int, class_index: int):
    g = torch.Generator().manual_seed(seed)
    ws = G.mapping(torch.randn(1, G.z_dim, generator=g), torch.tensor([class_index]), truncation_psi=0.8)
    with torch.no_grad():
        return ws, G.synthesis(ws, noise_mode="const")


def test_recovers_the_generators_own_sample(G):
    _, target = _sample(G, 11, 1)
    start = G.synthesis(G.mean_w(1)[:, None].expand(1, G.num_ws, -1))
    res = invert(G, target, class_index=1, num_steps=80, mode="w+")
    before = lpips_distance(start, target).item()
    after = lpips_distance(res.image, target).item()
    assert res.ws.shape == (1, G.num_ws, G.w_dim)
    assert res.image.shape == (1, 3, 16, 16)
    assert len(res.losses) == 80 and res.losses[-1] < 0.2 * res.losses[0]
    assert after < 0.03 and after < 0.2 * before, (before, after)
    assert psnr(res.image, target).item() > 24
    # the image is what the latent renders with the generator's own (const) noise
    torch.testing.assert_close(G.synthesis(res.ws, noise_mode="const"), res.image)


def test_w_mode_and_determinism(G):
    _, target = _sample(G, 3, 0)
    a = invert(G, target, class_index=0, num_steps=6, mode="w", generator=torch.Generator().manual_seed(1))
    b = invert(G, target, class_index=0, num_steps=6, mode="w", generator=torch.Generator().manual_seed(1))
    c = invert(G, target, class_index=0, num_steps=6, mode="w", generator=torch.Generator().manual_seed(2))
    assert torch.equal(a.ws, b.ws) and a.losses == b.losses
    assert not torch.equal(a.ws, c.ws)  # the early w perturbation is drawn from the generator
    assert torch.equal(a.ws, a.ws[:, :1].expand_as(a.ws))  # one w for every layer


def test_leaves_the_generator_untouched(G):
    _, target = _sample(G, 4, 0)
    before = {k: v.clone() for k, v in G.state_dict().items()}
    G.mapping.fc0.weight.requires_grad_(True)
    res = invert(G, target, class_index=0, num_steps=5, optimize_noise=True)
    for k, v in G.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert G.mapping.fc0.weight.requires_grad and G.mapping.fc0.weight.grad is None
    G.mapping.fc0.weight.requires_grad_(False)
    assert set(res.noise) == set(noise_buffers(G)) and res.noise
    assert all(torch.isfinite(v).all() for v in res.noise.values())
    assert len(res.terms["noise"]) == 5


def test_noise_regularization_is_small_for_white_noise_and_large_for_smooth():
    g = torch.Generator().manual_seed(0)
    white = [torch.randn(32, 32, generator=g)]
    smooth = [torch.ones(32, 32)]
    assert noise_regularization(white).item() < 1e-2 < noise_regularization(smooth).item()


def test_uint8_target_mask_and_progress(G):
    _, target = _sample(G, 5, 1)
    img = ((target[0].permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).round().byte().numpy()
    mask = np.ones((16, 16), np.float32)
    mask[:, :8] = 0
    other = img.copy()
    other[:, :8] = 255 - other[:, :8]  # differs only where the mask is zero
    calls = []
    a = invert(G, img, class_index=1, num_steps=4, mask=mask, lpips_weight=0.0,
               progress=lambda step, total, terms: calls.append((step, total, sorted(terms))))
    b = invert(G, other, class_index=1, num_steps=4, mask=mask, lpips_weight=0.0)
    assert torch.equal(a.ws, b.ws)  # masked-out pixels do not count
    c = invert(G, other, class_index=1, num_steps=4, lpips_weight=0.0)
    assert not torch.equal(a.ws, c.ws)
    assert calls == [(i, 4, ["mse"]) for i in range(1, 5)]


def test_face_mask_from_landmarks():
    # a rough synthetic 68-point face in a 64 px crop
    t = np.linspace(0, np.pi, 17)
    jaw = np.stack([32 - 20 * np.cos(t), 30 + 22 * np.sin(t)], 1)
    rest = np.stack([np.linspace(18, 46, 51), np.full(51, 30.0)], 1)
    rest[19:31, 1] = 26  # eyes (36..47 overall) a bit higher than the mouth
    pts = np.concatenate([jaw, rest]).astype(np.float32)
    m = face_mask(pts, image_size=64, resolution=16, floor=0.2)
    assert m.shape == (16, 16) and m.dtype == np.float32
    assert m.min() >= 0.2 - 1e-6 and m.max() <= 1 + 1e-6
    assert m[10, 8] > 0.9 and m[0, 0] < 0.3


def test_start_options(G):
    ws_true, target = _sample(G, 6, 0)
    res = invert(G, target, class_index=0, num_steps=0, start=ws_true)
    torch.testing.assert_close(res.ws, ws_true)
    E = Encoder(EncoderConfig.for_generator(G, channel_base=64, channel_max=16))
    with torch.no_grad():
        E.w_avg.copy_(torch.cat([G.mean_w(0), G.mean_w(1)]))
    res = invert(G, target, class_index=0, num_steps=0, encoder=E)  # start defaults to the encoder
    torch.testing.assert_close(res.ws, G.mean_w(0)[:, None].expand(1, G.num_ws, -1))  # untrained E -> mean w
    with pytest.raises(ValueError, match="encoder"):
        invert(G, target, class_index=0, num_steps=1, start="encoder")
    with pytest.raises(ValueError, match="class_index"):
        invert(G, target, class_index=None, num_steps=1)
    with pytest.raises(ValueError, match="mode"):
        invert(G, target, class_index=0, num_steps=1, mode="z")
    with pytest.raises(ValueError, match="start latent"):
        invert(G, target, class_index=0, num_steps=1, start=torch.zeros(3, 5))


def test_lbfgs_from_a_close_start_beats_adam_at_the_same_budget(G):
    ws_true, target = _sample(G, 12, 1)
    g = torch.Generator().manual_seed(5)
    start = ws_true + 0.3 * torch.randn(ws_true.shape, generator=g)  # a near guess, as an encoder gives
    first = lpips_distance(G.synthesis(start, noise_mode="const"), target).item()
    calls = []
    lb = invert(G, target, class_index=1, num_steps=20, start=start, optimizer="lbfgs",
                progress=lambda step, total, terms: calls.append((step, total)))
    adam = invert(G, target, class_index=1, num_steps=20, start=start)
    # every loss-and-gradient evaluation is a step, line-search ones included: the budget is exact
    assert len(lb.losses) == 20 and calls == [(i, 20) for i in range(1, 21)]
    # the result is the best point evaluated, and the image is what its latent renders
    assert lb.losses[0] >= min(lb.losses)
    torch.testing.assert_close(G.synthesis(lb.ws, noise_mode="const"), lb.image)
    ours, theirs = lpips_distance(lb.image, target).item(), lpips_distance(adam.image, target).item()
    assert ours < 0.5 * first and ours < theirs, (first, ours, theirs)
    # deterministic: no random draws
    again = invert(G, target, class_index=1, num_steps=20, start=start, optimizer="lbfgs")
    assert torch.equal(again.ws, lb.ws)


def test_lbfgs_budget_is_exact_for_tiny_budgets_and_w_mode(G):
    _, target = _sample(G, 13, 0)
    for n in (0, 1, 3):
        res = invert(G, target, class_index=0, num_steps=n, optimizer="lbfgs", mode="w")
        assert len(res.losses) == n
        assert torch.equal(res.ws, res.ws[:, :1].expand_as(res.ws))
    with pytest.raises(ValueError, match="optimizer"):
        invert(G, target, class_index=0, num_steps=1, optimizer="sgd")
    with pytest.raises(ValueError, match="noise"):
        invert(G, target, class_index=0, num_steps=1, optimizer="lbfgs", optimize_noise=True)


def test_latent_round_trip(G, tmp_path):
    _, target = _sample(G, 7, 1)
    res = invert(G, target, class_index=1, num_steps=2, optimize_noise=True)
    res.save(tmp_path / "z.safetensors")
    ws, noise, meta = load_latent(tmp_path / "z.safetensors")
    assert torch.equal(ws, res.ws) and meta["class_index"] == "1" and meta["mode"] == "w+"
    assert set(noise) == set(res.noise)
    assert res.image_uint8().shape == (16, 16, 3) and res.image_uint8().dtype == np.uint8


def test_psnr():
    a = torch.zeros(2, 3, 8, 8)
    b = a + 0.02
    assert psnr(a, b).shape == (2,)
    assert psnr(a, b)[0].item() == pytest.approx(10 * np.log10(4 / 0.0004), rel=1e-4)


def test_invert_cli_on_an_aligned_crop(G, tmp_path, capsys):
    from PIL import Image

    from face2emoticon.checkpoint import save_generator
    from ui.cli import main

    _, target = _sample(G, 8, 1)
    crop = ((target[0].permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).round().byte().numpy()
    Image.fromarray(crop).resize((64, 64)).save(tmp_path / "crop.png")
    gpath = save_generator(G, tmp_path / "g")
    out = tmp_path / "latent.safetensors"
    assert main(["invert", str(tmp_path / "crop.png"), "--weights", str(gpath), "--style", "dog", "--crop",
                 "-o", str(out), "--steps", "3"]) == 0
    ws, _, meta = load_latent(out)
    assert ws.shape == (1, G.num_ws, G.w_dim) and meta["class_index"] == "1"
    assert Image.open(out.with_suffix(".png")).size == (32, 16)  # target | result
    assert "final lpips" in capsys.readouterr().out
    assert main(["invert", str(tmp_path / "crop.png"), "--weights", str(gpath), "--style", "cow", "--crop",
                 "-o", str(out)]) == 2
    assert "unknown style" in capsys.readouterr().err
    # L-BFGS from the command line; a name without a suffix gets .safetensors
    assert main(["invert", str(tmp_path / "crop.png"), "--weights", str(gpath), "--style", "dog", "--crop",
                 "-o", str(tmp_path / "plain"), "--steps", "4", "--optimizer", "lbfgs"]) == 0
    ws, _, _ = load_latent(tmp_path / "plain.safetensors")
    assert ws.shape == (1, G.num_ws, G.w_dim) and (tmp_path / "plain.png").exists()
    assert main(["invert", str(tmp_path / "crop.png"), "--weights", str(gpath), "--crop", "-o", str(out),
                 "--optimizer", "lbfgs", "--optimize-noise"]) == 2
    assert "lbfgs" in capsys.readouterr().err
