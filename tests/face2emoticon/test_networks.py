import pytest
import torch

from face2emoticon import ops
from face2emoticon.augment import AdaptiveAugment, augment
from face2emoticon.config import DiscriminatorConfig, GeneratorConfig, toy_config
from face2emoticon.networks import Discriminator, Generator, set_fused, set_impl


def _z(n, dim, seed=0):
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))


def test_generator_shapes_ranges_and_names():
    cfg = toy_config()
    G = Generator(cfg).eval()
    z, c = _z(4, cfg.z_dim), torch.tensor([0, 1, 0, 1])
    ws = G.mapping(z, c)
    assert ws.shape == (4, G.num_ws, G.w_dim) == (4, 6, 16)
    img = G.synthesis(ws)
    assert img.shape == (4, 3, 16, 16) and img.dtype == torch.float32
    assert torch.isfinite(img).all() and img.abs().max() < 20
    names = set(G.state_dict())
    for key in ("mapping.fc0.weight", "mapping.embed.weight", "mapping.w_avg", "synthesis.b4.const",
                "synthesis.b16.conv0.weight", "synthesis.b16.conv1.noise_const", "synthesis.b16.torgb.affine.bias"):
        assert key in names


def test_unconditional_and_errors():
    G = Generator(toy_config(class_names=()))
    assert G.c_dim == 0 and G(_z(2, 16)).shape == (2, 3, 16, 16)
    Gc = Generator(toy_config())
    with pytest.raises(ValueError, match="conditional"):
        Gc(_z(2, 16))
    with pytest.raises(ValueError, match="z must be"):
        Gc(_z(2, 8), torch.tensor([0, 1]))


def test_determinism_and_seeded_init():
    cfg = toy_config()
    a, b, other = Generator(cfg, seed=3), Generator(cfg, seed=3), Generator(cfg, seed=4)
    z, c = _z(2, 16), torch.tensor([0, 1])
    assert torch.equal(a(z, c), b(z, c))
    assert not torch.equal(a(z, c), other(z, c))
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(a(z, c, noise_mode="random", generator=g1), a(z, c, noise_mode="random", generator=g2))


def test_class_changes_output_and_mean_w_cached():
    G = Generator(toy_config())
    z = _z(1, 16)
    assert not torch.allclose(G(z, torch.tensor([0])), G(z, torch.tensor([1])))
    m0 = G.mean_w(0, n=256)
    assert m0.shape == (1, 16) and G.mean_w(0, n=256) is m0
    assert not torch.allclose(m0, G.mean_w(1, n=256))
    with torch.no_grad():
        G.mapping.fc0.bias.add_(1.0)  # weights changed -> cache invalid
    assert not torch.allclose(G.mean_w(0, n=256), m0)


def test_truncation_psi_zero_gives_class_mean():
    G = Generator(toy_config())
    z, c = _z(3, 16), torch.tensor([1, 1, 1])
    ws = G.mapping(z, c, truncation_psi=0.0)
    assert torch.allclose(ws, G.mean_w(1).expand(3, G.num_ws, -1), atol=1e-6)
    ws_cut = G.mapping(z, c, truncation_psi=0.0, truncation_cutoff=2)
    assert torch.allclose(ws_cut[:, 2:], G.mapping(z, c)[:, 2:])


def test_style_mixing_helper():
    a, b = torch.zeros(2, 6, 4), torch.ones(2, 6, 4)
    m = Generator.mix(a, b, 2)
    assert m[:, :2].sum() == 0 and (m[:, 2:] == 1).all()


def test_fused_and_reference_ops_agree():
    G = Generator(toy_config()).eval()
    z, c = _z(3, 16), torch.tensor([0, 1, 1])
    layers = [G.synthesis.b16.conv0, G.synthesis.b16.torgb]
    with torch.no_grad():
        dense = G(z, c)  # default: activation-scaling modulation, fast resampling ops
        assert not any(m.fused for m in layers)
        grouped = set_fused(G, True)(z, c)
        assert all(m.fused for m in layers)
        reference = set_impl(set_fused(G, False), "reference")(z, c)
        assert G.synthesis.b16.impl == G.synthesis.b16.conv0.impl == "reference"
    assert torch.allclose(grouped, dense, atol=1e-5), (grouped - dense).abs().max()
    assert torch.allclose(reference, dense, atol=1e-5), (reference - dense).abs().max()


@pytest.mark.parametrize("up, demodulate, k", [(False, True, 3), (True, True, 3), (False, False, 1)])
def test_modulated_conv_forms_match_per_sample_convolution(up, demodulate, k):
    g = torch.Generator().manual_seed(0)
    x, weight = torch.randn(3, 4, 6, 6, generator=g), torch.randn(5, 4, k, k, generator=g)
    styles = torch.randn(3, 4, generator=g) + 1
    fir = ops.fir_kernel((1, 3, 3, 1))
    expected = []
    for i in range(3):  # one ordinary convolution per sample with its own modulated kernel
        w = weight / (4 * k * k) ** 0.5 * styles[i].view(1, 4, 1, 1)
        if demodulate:
            w = w / (w.square().sum([1, 2, 3], keepdim=True) + 1e-8).sqrt()
        if up:
            y = torch.nn.functional.conv_transpose2d(x[i: i + 1], w.transpose(0, 1), stride=2)
            y = ops.upfirdn2d_native(y, fir * 4, pad=(1, 1))
        else:
            y = torch.nn.functional.conv2d(x[i: i + 1], w, padding=k // 2)
        expected.append(y)
    expected = torch.cat(expected)
    assert expected.shape == (3, 5, 12 if up else 6, 12 if up else 6)
    for fused in (True, False):
        got = ops.modulated_conv2d(x, weight, styles, demodulate=demodulate, up=up, kernel=fir, fused=fused)
        assert torch.allclose(got, expected, atol=1e-5), (fused, (got - expected).abs().max())


def test_upsample_matches_native_upfirdn():
    x = torch.randn(2, 3, 5, 5)
    k = ops.fir_kernel((1, 3, 3, 1))
    assert torch.allclose(ops.upsample2d(x, k), ops.upsample2d(x, k, impl="reference"), atol=1e-6)
    assert ops.upsample2d(x, k).shape == (2, 3, 10, 10)
    # the FIR preserves a constant image (away from the zero-padded border)
    ones = ops.upsample2d(torch.ones(1, 1, 8, 8), k)
    assert torch.allclose(ones[..., 2:-2, 2:-2], torch.ones(1, 1, 12, 12))


def test_discriminator_shapes_and_conditioning():
    cfg = toy_config()
    D = Discriminator(DiscriminatorConfig.matching(cfg))
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    out = D(x, torch.tensor([0, 1, 0, 1]))
    assert out.shape == (4,) and torch.isfinite(out).all()
    assert not torch.allclose(out, D(x, torch.tensor([1, 0, 1, 0])))
    assert {k.split(".")[0] for k in D.state_dict()} == {"b16", "b8", "b4", "embed"}
    set_impl(D, "reference")
    assert torch.allclose(D(x, torch.tensor([0, 1, 0, 1])), out, atol=1e-5)
    # odd batch: minibatch-stddev groups fall back to a divisor
    assert D(x[:3], torch.tensor([0, 1, 0])).shape == (3,)


def test_gradients_flow_under_bf16_autocast():
    cfg = toy_config()
    G, D = Generator(cfg).train(), Discriminator(DiscriminatorConfig.matching(cfg))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        img = G(_z(2, 16), torch.tensor([0, 1]))
        score = D(img, torch.tensor([0, 1]))
    score.float().sum().backward()
    assert G.synthesis.b16.conv0.weight.grad is not None and torch.isfinite(G.mapping.fc0.weight.grad).all()


def test_config_json_round_trip():
    cfg = toy_config(class_names=("x", "y", "z"))
    assert GeneratorConfig.from_json(cfg.to_json()) == cfg
    assert cfg.c_dim == 3 and cfg.num_ws == 6
    with pytest.raises(ValueError):
        GeneratorConfig(resolution=48)


def test_augment_is_differentiable_and_identity_at_p0():
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert augment(x, 0.0, generator=torch.Generator().manual_seed(1)) is x
    x.requires_grad_(True)
    y = augment(x, 1.0, generator=torch.Generator().manual_seed(1))
    assert y.shape == x.shape and not torch.allclose(y, x)
    (grad,) = torch.autograd.grad((y * torch.linspace(-1, 1, 16)).sum(), x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    # deterministic for a seed
    y2 = augment(x, 1.0, generator=torch.Generator().manual_seed(1))
    assert torch.equal(y, y2)


def test_ada_controller_moves_p_by_sign():
    ada = AdaptiveAugment(p=0.5, target=0.6, speed_kimg=0.1, interval=2)
    for _ in range(2):
        ada.accumulate(torch.ones(8))  # D is sure of reals -> overfitting -> more augmentation
    assert ada.p > 0.5
    p = ada.p
    for _ in range(2):
        ada.accumulate(-torch.ones(8))
    assert ada.p < p
    state = ada.state()
    other = AdaptiveAugment()
    other.load_state(state)
    assert other.state() == state
