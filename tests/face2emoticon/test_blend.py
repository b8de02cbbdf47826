import numpy as np
import pytest
import torch
from PIL import Image

from face2emoticon.blend import blend, blend_sheet, blend_state_dicts, resolution_of
from face2emoticon.checkpoint import load_generator, save_generator
from face2emoticon.config import toy_config
from face2emoticon.networks import Generator
from ui.cli import main


@pytest.fixture(scope="module")
def pair():
    return Generator(toy_config(), seed=1).eval(), Generator(toy_config(), seed=2).eval()


def _equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_resolution_of_names():
    assert resolution_of("synthesis.b16.conv0.weight") == 16 and resolution_of("mapping.fc0.weight") is None


def test_extreme_swaps_return_one_parent_exactly(pair):
    base, tuned = pair
    assert _equal(blend(base, tuned, swap_resolution=4), tuned)  # everything from the high side
    assert _equal(blend(base, tuned, swap_resolution=32, mapping_from="base"), base)  # nothing swapped
    assert _equal(blend(base, tuned, swap_resolution=32, low_from="tuned"), tuned)  # other direction
    assert _equal(blend(base, tuned, swap_resolution=4, low_from="tuned", mapping_from="base"), base)
    assert _equal(blend(base, tuned, swap_resolution=8, alpha=0.0, mapping_from="base"), base)


def test_middle_swap_takes_blocks_by_name(pair):
    base, tuned = pair
    sb, st = base.state_dict(), tuned.state_dict()
    out = blend_state_dicts(sb, st, swap_resolution=16)
    assert torch.equal(out["synthesis.b8.conv1.weight"], sb["synthesis.b8.conv1.weight"])
    assert torch.equal(out["synthesis.b16.conv1.weight"], st["synthesis.b16.conv1.weight"])
    assert torch.equal(out["mapping.fc0.weight"], st["mapping.fc0.weight"])
    rev = blend_state_dicts(sb, st, swap_resolution=16, low_from="tuned")
    assert torch.equal(rev["synthesis.b8.conv1.weight"], st["synthesis.b8.conv1.weight"])
    half = blend_state_dicts(sb, st, swap_resolution=16, alpha=0.5)
    k = "synthesis.b16.conv0.weight"
    assert torch.allclose(half[k], (sb[k] + st[k]) / 2, atol=1e-6)
    assert torch.equal(sb[k], base.state_dict()[k])  # inputs untouched


def test_alpha_is_smooth(pair):
    base, tuned = pair
    z, c = torch.randn(2, 16, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1])
    imgs = [blend(base, tuned, swap_resolution=8, alpha=a)(z, c) for a in (0.0, 0.5, 1.0)]
    d01, d02 = (imgs[1] - imgs[0]).abs().mean(), (imgs[2] - imgs[0]).abs().mean()
    assert 0 < d01 < d02


def test_architecture_mismatch_is_refused(pair):
    with pytest.raises(ValueError, match="architectures"):
        blend(pair[0], Generator(toy_config(channel_max=16)), swap_resolution=8)


def test_sheet_and_cli(pair, tmp_path, capsys):
    grid, labels = blend_sheet(*pair, seeds=(0, 1, 2))
    assert labels == ["base", "swap 8", "swap 16", "tuned"] and grid.shape == (4 * 16, 3 * 16, 3)
    save_generator(pair[0], tmp_path / "base")
    save_generator(pair[1], tmp_path / "tuned")
    assert main(["blend", str(tmp_path / "base.safetensors"), str(tmp_path / "tuned.safetensors"), "--out",
                 str(tmp_path / "mix"), "--swap-resolution", "8", "--sheet", str(tmp_path / "sheet.png")]) == 0
    G = load_generator(tmp_path / "mix")
    assert torch.equal(G.synthesis.b4.conv1.weight, pair[0].synthesis.b4.conv1.weight)
    assert torch.equal(G.synthesis.b8.conv1.weight, pair[1].synthesis.b8.conv1.weight)
    assert np.asarray(Image.open(tmp_path / "sheet.png")).shape == (64, 64, 3)
    # the README's short form: -o for --out
    assert main(["blend", str(tmp_path / "base.safetensors"), str(tmp_path / "tuned.safetensors"),
                 "--swap-resolution", "8", "-o", str(tmp_path / "short")]) == 0
    assert str(tmp_path / "short.safetensors") in capsys.readouterr().out
    assert _equal(load_generator(tmp_path / "short"), G)
