"""Paired fine-tuning: the identity index, the rendering rule, training that learns, resume, the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from face2emoticon.checkpoint import load_generator, save_generator
from face2emoticon.config import GeneratorConfig
from face2emoticon.dataset import DatasetError, load_dataset, paired_index
from face2emoticon.encoder import Encoder, EncoderConfig, load_encoder, save_encoder
from face2emoticon.networks import Generator
from face2emoticon.train_paired import (
    PairedTrainer,
    PairedTrainOptions,
    cross_ws,
    pooled_l1,
    train_paired,
)
from landmarks.errors import EmogetError, WeightsError

STYLES = ("round", "square")
LPIPS_REDRAW = 0.08  # measured 0.033 on the validation identities after 5,854 paired steps (0.19 before)


def _draw(identity: int, style: str) -> np.ndarray:
    """16 px: a disc (round) or a square (square) in the identity's colour, its size from the identity."""
    rng = np.random.default_rng(identity)
    colour = rng.integers(0, 256, 3)
    r = 3 + identity % 4
    yy, xx = np.mgrid[:16, :16] - 7.5
    inside = (xx ** 2 + yy ** 2 <= r * r) if style == "round" else (np.maximum(abs(xx), abs(yy)) <= r)
    img = np.full((16, 16, 3), 242, np.uint8)
    img[inside] = colour
    return img


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """data/<style>/<identity>.png for 12 identities in both styles, plus one drawn in one style only; a toy
    generator and its encoder on disk."""
    root = tmp_path_factory.mktemp("paired")
    data = root / "data"
    for s in STYLES:
        (data / s).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(_draw(i, s)).save(data / s / f"{i:05d}.png")
    Image.fromarray(_draw(99, "round")).save(data / "round" / "00099.png")
    G = Generator(GeneratorConfig(resolution=16, z_dim=16, w_dim=16, mapping_layers=2, channel_base=128,
                                  channel_max=16, class_names=STYLES), seed=0).eval()
    E = Encoder(EncoderConfig.for_generator(G, channel_base=64, channel_max=16), seed=0)
    with torch.no_grad():
        E.w_avg.copy_(torch.cat([G.mean_w(0), G.mean_w(1)]))
    return {"data": data, "generator": save_generator(G, root / "g"), "encoder": save_encoder(E, root / "e")}


TINY = {"batch": 4, "holdout": 2, "val_identities": 2, "val_every": 0, "sample_every": 0, "log_every": 2,
        "background": "f2f2f2"}


def test_paired_index_rows_are_identities_drawn_in_every_style(files):
    index = paired_index(files["data"])
    ds = load_dataset(files["data"], resolution=16, background=(242, 242, 242))
    assert index.shape == (12, 2)  # 00099 is drawn in one style only
    for i in (0, 7, 11):
        for c, s in enumerate(STYLES):
            np.testing.assert_array_equal(ds.images[index[i, c]].permute(1, 2, 0).numpy(), _draw(i, s))
            assert int(ds.labels[index[i, c]]) == c


def test_paired_index_refuses_data_without_pairs(tmp_path):
    for s, name in (("a", "1.png"), ("b", "2.png")):
        (tmp_path / s).mkdir()
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / s / name)
    with pytest.raises(DatasetError, match="every class folder"):
        paired_index(tmp_path)


def test_cross_ws_is_the_pipelines_rendering_rule():
    g = torch.Generator().manual_seed(0)
    means = torch.randn(3, 5, generator=g)
    ws = torch.randn(2, 4, 5, generator=g)
    a, b = torch.tensor([0, 2]), torch.tensor([1, 1])
    full = cross_ws(ws, means, a, b, torch.zeros(2))
    torch.testing.assert_close(full, ws - means[a][:, None] + means[b][:, None])
    torch.testing.assert_close(cross_ws(ws, means, a, b, torch.ones(2)), means[b][:, None].expand(-1, 4, -1))
    half = cross_ws(ws, means, a, b, torch.tensor([0.25, 0.25]))
    torch.testing.assert_close(half, means[b][:, None] + 0.75 * (ws - means[a][:, None]))
    same = cross_ws(means[a][:, None].expand(-1, 4, -1), means, a, b, torch.zeros(2))
    torch.testing.assert_close(same, means[b][:, None].expand(-1, 4, -1))  # the mean face stays the mean face


def test_pooled_l1_sees_coarse_colour_not_detail():
    x = torch.zeros(1, 3, 16, 16)
    checker = torch.zeros(1, 3, 16, 16)
    checker[..., ::2, ::2] = 1
    checker[..., 1::2, 1::2] = -1  # zero mean in every 2x2 cell
    assert float(pooled_l1(checker, x, 8)) == 0
    assert float(pooled_l1(x + 0.5, x, 8)) == pytest.approx(0.5)


def test_batches_pair_one_identity_in_two_styles(files, tmp_path):
    trainer = PairedTrainer(files["data"], tmp_path / "run", generator=files["generator"], encoder=files["encoder"],
                            options=PairedTrainOptions(steps=1, **TINY))
    x_a, a, x_b, b, s = trainer.batch(3)
    again = trainer.batch(3)
    assert all(torch.equal(u, v) for u, v in zip((x_a, a, x_b, b, s), again, strict=True))
    assert not torch.equal(x_a, trainer.batch(4)[0])
    assert bool((a != b).all()) and float(s.max()) <= 0.5
    held_out = {tuple(r) for r in trainer.val_index.tolist()}
    assert len(held_out) == 2 and not held_out & {tuple(r) for r in trainer.train_index.tolist()}
    for i in range(x_a.shape[0]):  # the same identity: same colour at the centre, in both styles
        torch.testing.assert_close(x_a[i, :, 8, 8], x_b[i, :, 8, 8])


def test_training_learns_the_renders_and_keeps_the_mapping(files, tmp_path):
    opts = PairedTrainOptions(steps=40, g_lr=2e-3, e_lr=2e-3, **{**TINY, "batch": 8, "holdout": 2, "log_every": 40})
    trainer = PairedTrainer(files["data"], tmp_path / "run", generator=files["generator"], encoder=files["encoder"],
                            options=opts)
    fixed = trainer.batch(0)
    with torch.no_grad():
        before = {k: float(v) for k, v in trainer.losses(*fixed).items()}
    mapping = {k: v.clone() for k, v in trainer.G.mapping.state_dict().items()}
    synthesis = {k: v.clone() for k, v in trainer.G.synthesis.state_dict().items()}
    result = trainer.run()
    with torch.no_grad():
        after = {k: float(v) for k, v in trainer.losses(*fixed).items()}
    assert after["l1"] < 0.7 * before["l1"] and after["cross"] < 0.8 * before["cross"], (before, after)
    G = load_generator(result.generator_path)
    assert all(torch.equal(G.mapping.state_dict()[k], v) for k, v in mapping.items())
    assert any(not torch.equal(G.synthesis.state_dict()[k], v) for k, v in synthesis.items())
    E = load_encoder(result.encoder_path)
    torch.testing.assert_close(E.w_avg, load_encoder(files["encoder"]).w_avg)  # class means unchanged
    info = json.loads((tmp_path / "run" / "G.json").read_text())
    assert info["origin"]["steps"] == 40 and info["origin"]["start"]["generator_sha256"]
    assert set(result.val) == {"l1", "lpips", "psnr", "cross_s0", "cross_s0.25"}


def test_resume_is_bit_for_bit_and_refuses_other_options(files, tmp_path):
    opts = PairedTrainOptions(steps=4, **TINY)
    ref = train_paired(files["data"], tmp_path / "a", generator=files["generator"], encoder=files["encoder"],
                       options=opts)
    half = PairedTrainer(files["data"], tmp_path / "b", generator=files["generator"], encoder=files["encoder"],
                         options=opts)

    def killer(step):
        if step == 2:
            raise KeyboardInterrupt  # Ctrl-C: the run checkpoints step 2 and stops

    with pytest.raises(KeyboardInterrupt):
        half.run(on_step=killer)
    again = train_paired(files["data"], tmp_path / "b", generator=files["generator"], encoder=files["encoder"],
                         options=opts)
    assert again.step == 4
    for load, key in ((load_generator, "generator_path"), (load_encoder, "encoder_path")):
        a, b = load(getattr(ref, key)).state_dict(), load(getattr(again, key)).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), key
    steps = [json.loads(x)["step"] for x in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps.count(2) == 1  # the log was not written twice
    with pytest.raises(EmogetError, match="other options"):
        train_paired(files["data"], tmp_path / "b", generator=files["generator"], encoder=files["encoder"],
                     options=PairedTrainOptions(steps=6, **{**TINY, "g_lr": 0.5}))


def test_refuses_an_unconditional_generator(files, tmp_path):
    G = Generator(GeneratorConfig(resolution=16, z_dim=16, w_dim=16, mapping_layers=2, channel_base=128,
                                  channel_max=16), seed=0)
    path = save_generator(G, tmp_path / "uncond")
    with pytest.raises(WeightsError, match="conditional"):
        PairedTrainer(files["data"], tmp_path / "run", generator=path, encoder=files["encoder"],
                      options=PairedTrainOptions(**TINY))


def test_cli_trains_and_writes_samples(files, tmp_path, capsys):
    from ui.cli import main

    argv = ["train-paired", str(files["data"]), "--generator", str(files["generator"]), "--encoder",
            str(files["encoder"]), "--out", str(tmp_path / "run"), "--steps", "2", "--batch", "2", "--holdout", "2",
            "--val-identities", "2", "--val-every", "2", "--sample-every", "2", "--threads", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "step 2:" in out and '"cross_s0.25"' in out
    grid = np.asarray(Image.open(tmp_path / "run" / "samples" / "step-0000002.png"))
    assert grid.shape == (2 * 16, (2 + len(STYLES)) * 16, 3)  # input, reconstruction, every style
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["command"].startswith("emoget train-paired") and config["options"]["steps"] == 2


def test_ship_makes_the_run_the_default_and_refuses_a_run_from_other_weights(tmp_path):
    import weights as registry
    from face2emoticon.recipes.paired import ship
    from face2emoticon.styles import STYLE_NAMES

    wdir, run = tmp_path / "weights", tmp_path / "run"
    wdir.mkdir()
    run.mkdir()
    G = Generator(GeneratorConfig(resolution=16, z_dim=16, w_dim=16, mapping_layers=2, channel_base=128,
                                  channel_max=16, class_names=STYLE_NAMES), seed=0).eval()
    E = Encoder(EncoderConfig.for_generator(G, channel_base=64, channel_max=16), seed=0)
    g0, e0 = save_generator(G, wdir / "stylegan2-emoget-64"), save_encoder(E, wdir / "encoder-emoget-64")
    reg = wdir / "registry.json"
    registry.register("stylegan2-emoget-64", g0, kind="generator", licence="x", origin={"command": "first"},
                      metrics={"fd": 1.0}, registry_path=reg)
    registry.register("encoder-emoget-64", e0, kind="encoder", licence="x", origin={"command": "enc"}, registry_path=reg)
    with torch.no_grad():
        G.synthesis.b4.conv1.weight.add_(0.1)  # the "fine-tuned" generator
    save_generator(G, run / "G", extra={"origin": {"command": "emoget train-paired ...", "steps": 3}, "val": {"l1": 0.1}})
    save_encoder(E, run / "encoder")
    (run / "log.jsonl").write_text('{"step": 3}\n')
    start = {"generator_sha256": registry.sha256_of(g0), "encoder_sha256": registry.sha256_of(e0)}
    (run / "config.json").write_text(json.dumps({"start": {**start, "generator_sha256": "0" * 64}}))
    with pytest.raises(WeightsError, match="start the run again"):
        ship(run, data=tmp_path, weights_dir=wdir)
    (run / "config.json").write_text(json.dumps({"start": start}))
    g, e = ship(run, data=tmp_path, weights_dir=wdir)
    entries = registry.load_registry(reg)
    for name in ("stylegan2-emoget-64", "encoder-emoget-64"):
        registry.check(entries[name])
    assert g["sha256"] == registry.sha256_of(run / "G.safetensors") != start["generator_sha256"]
    assert g["origin"]["base"] == {"sha256": start["generator_sha256"], "origin": {"command": "first"}}
    assert g["metrics"] == {}  # the replaced generator's figures are not this one's
    assert e["origin"]["generator_sha256"] == g["sha256"] and e["origin"]["init"]["origin"] == {"command": "enc"}
    assert (wdir / "stylegan2-emoget-64.paired.log.jsonl").read_text() == '{"step": 3}\n'
    torch.testing.assert_close(load_generator(wdir / "stylegan2-emoget-64.safetensors").synthesis.b4.conv1.weight,
                               G.synthesis.b4.conv1.weight)


@pytest.mark.weights
def test_shipped_generator_and_encoder_redraw_renders_never_trained_on():
    """Held-out identities (another seed than the training data) in every style: the shipped encoder's latent,
    drawn by the shipped generator, is close to the render, and much closer than the style's mean face."""
    import weights as registry
    from face2emoticon.lpips import get_lpips
    from face2emoticon.recipes.figures import held_out_renders
    from face2emoticon.styles import STYLE_NAMES

    G = load_generator(registry.path_of("stylegan2-emoget-64", verify=True))
    E = load_encoder(registry.path_of("encoder-emoget-64", verify=True))
    _, renders = held_out_renders(2, STYLE_NAMES, size=64)
    lp = get_lpips("alex")
    ours, mean_face = [], []
    with torch.no_grad():
        for k, s in enumerate(STYLE_NAMES):
            for img in renders[s]:
                x = torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1
                rec = G.synthesis(E(x, torch.tensor([k])), noise_mode="const")
                mean = G.synthesis(G.mean_w(k)[:, None].repeat(1, G.num_ws, 1), noise_mode="const")
                ours.append(float(lp(rec, x)[0]))
                mean_face.append(float(lp(mean, x)[0]))
    assert np.mean(ours) < LPIPS_REDRAW and np.mean(ours) < 0.5 * np.mean(mean_face), (ours, mean_face)
