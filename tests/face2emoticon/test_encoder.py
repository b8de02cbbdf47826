"""Encoder: shapes, save/load, training on a toy generator, resume after a simulated kill, the CLI."""
from __future__ import annotations

import json

import pytest
import torch

from face2emoticon.config import GeneratorConfig
from face2emoticon.encoder import (
    Encoder,
    EncoderConfig,
    EncoderTrainOptions,
    load_encoder,
    sample_batch,
    save_encoder,
    train_encoder,
)
from face2emoticon.networks import Generator
from landmarks.errors import WeightsError


def toy_generator() -> Generator:
    cfg = GeneratorConfig(resolution=16, z_dim=32, w_dim=32, mapping_layers=2, channel_base=256, channel_max=32,
                          class_names=("cat", "dog"))
    return Generator(cfg, seed=0).eval()


@pytest.fixture(scope="module")
def G():
    return toy_generator()


TINY = {"channel_base": 128, "channel_max": 16, "batch_size": 4, "log_every": 2, "val_size": 4}


def test_shapes_and_untrained_output_is_the_class_mean(G):
    E = Encoder(EncoderConfig.for_generator(G, channel_base=128, channel_max=16))
    means = torch.cat([G.mean_w(0), G.mean_w(1)])
    with torch.no_grad():
        E.w_avg.copy_(means)
    img = torch.zeros(3, 3, 16, 16)
    ws = E(img, torch.tensor([0, 1, 1]))
    assert ws.shape == (3, G.num_ws, G.w_dim)
    torch.testing.assert_close(ws, means[[0, 1, 1]][:, None].expand(-1, G.num_ws, -1))
    with pytest.raises(ValueError, match="class indices"):
        E(img)
    with pytest.raises(ValueError, match=r"\[B,3,16,16\]"):
        E(torch.zeros(1, 3, 8, 8), torch.tensor([0]))


def test_save_load_round_trip(G, tmp_path):
    E = Encoder(EncoderConfig.for_generator(G, channel_base=128, channel_max=16), seed=3)
    with torch.no_grad():
        E.out.weight.normal_()  # make the output depend on the input
    path = save_encoder(E, tmp_path / "enc")
    assert path.name == "enc.safetensors" and (tmp_path / "enc.json").exists()
    E2 = load_encoder(path)
    img = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    c = torch.tensor([1, 0])
    torch.testing.assert_close(E2(img, c), E(img, c), rtol=0, atol=0)
    info = json.loads((tmp_path / "enc.json").read_text())
    info["config"]["channel_max"] = 32  # a config that no longer matches the tensors
    (tmp_path / "enc.json").write_text(json.dumps(info))
    with pytest.raises(WeightsError, match="does not match"):
        load_encoder(path)


def test_batches_are_a_function_of_seed_and_step(G):
    means = torch.cat([G.mean_w(0), G.mean_w(1)])
    a = sample_batch(G, 5, batch_size=3, seed=1, truncation_min=0.5, class_means=means)
    b = sample_batch(G, 5, batch_size=3, seed=1, truncation_min=0.5, class_means=means)
    c = sample_batch(G, 6, batch_size=3, seed=1, truncation_min=0.5, class_means=means)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[2], c[2])


def test_training_improves_the_held_out_reconstruction(G, tmp_path):
    opts = EncoderTrainOptions(steps=60, lr=2e-3, **{**TINY, "batch_size": 8, "log_every": 30})
    res = train_encoder(G, tmp_path / "run", options=opts)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    E0 = Encoder(EncoderConfig.for_generator(G, channel_base=128, channel_max=16))
    with torch.no_grad():
        E0.w_avg.copy_(torch.cat([G.mean_w(0), G.mean_w(1)]))
    from face2emoticon.encoder import _validate

    val = sample_batch(G, -1, batch_size=4, seed=7919, truncation_min=0.5, class_means=E0.w_avg)
    start = _validate(E0, G, val)  # the untrained encoder (= class mean) on the same held-out batch
    assert [r["step"] for r in log] == [30, 60]
    assert res.val["latent"] < 0.97 * start["latent"] and res.val["lpips"] < 0.9 * start["lpips"], (start, res.val)


def test_resume_after_kill_is_bit_for_bit(G, tmp_path):
    opts = EncoderTrainOptions(steps=6, checkpoint_every=3, **TINY)
    ref = train_encoder(G, tmp_path / "a", options=opts)

    def killer(step, total, terms):
        if step == 5:
            raise KeyboardInterrupt  # dies after the step-3 checkpoint, before the next one

    with pytest.raises(KeyboardInterrupt):
        train_encoder(G, tmp_path / "b", options=opts, progress=killer)
    assert not (tmp_path / "b" / "encoder.safetensors").exists()
    again = train_encoder(G, tmp_path / "b", options=opts)
    assert again.resumed_from == 3
    Ea, Eb = load_encoder(ref.encoder_path), load_encoder(again.encoder_path)
    for (k, va), vb in zip(Ea.state_dict().items(), Eb.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k
    with pytest.raises(WeightsError, match="other options"):
        train_encoder(G, tmp_path / "b", options=EncoderTrainOptions(steps=8, checkpoint_every=3,
                                                                     **{**TINY, "lr": 0.5}))


def test_cli_trains_and_resumes(G, tmp_path, capsys):
    from face2emoticon.checkpoint import save_generator
    from ui.cli import main

    gpath = save_generator(G, tmp_path / "g")
    argv = ["train-encoder", "--generator", str(gpath), "--out", str(tmp_path / "run"), "--steps", "2",
            "--batch-size", "2", "--channel-base", "128", "--channel-max", "16", "--val-size", "2", "--quiet"]
    assert main(argv) == 0
    assert "resumed from 0" in capsys.readouterr().out
    argv[argv.index("--steps") + 1] = "3"
    assert main(argv) == 0
    assert "resumed from 2" in capsys.readouterr().out
    assert load_encoder(tmp_path / "run" / "encoder.safetensors").cfg.num_ws == G.num_ws


def test_init_continues_from_an_encoder_and_refuses_another_shape(G, tmp_path):
    first = train_encoder(G, tmp_path / "a", options=EncoderTrainOptions(steps=3, **TINY))
    again = train_encoder(G, tmp_path / "b", options=EncoderTrainOptions(steps=0, init=str(first.encoder_path), **TINY))
    a, b = load_encoder(first.encoder_path).state_dict(), load_encoder(again.encoder_path).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(WeightsError, match="does not fit"):
        train_encoder(G, tmp_path / "c", options=EncoderTrainOptions(
            steps=0, init=str(first.encoder_path), **{**TINY, "channel_max": 8}))


def test_ship_encoder_registers_it_for_its_generator_and_keeps_the_one_before(G, tmp_path):
    import weights as registry
    from face2emoticon.checkpoint import save_generator
    from face2emoticon.recipes.default import ship_encoder

    gpath = save_generator(G, tmp_path / "g")
    wdir = tmp_path / "weights"
    wdir.mkdir()
    first = train_encoder(G, tmp_path / "a", options=EncoderTrainOptions(steps=2, **TINY), command="emoget first")
    ship_encoder(tmp_path / "a", gpath, name="enc", weights_dir=wdir)
    train_encoder(G, tmp_path / "b", options=EncoderTrainOptions(steps=2, init=str(first.encoder_path), **TINY),
                  command="emoget again", generator_sha256=registry.sha256_of(gpath))
    entry = ship_encoder(tmp_path / "b", gpath, name="enc", weights_dir=wdir)
    reg = registry.load_registry(wdir / "registry.json")
    registry.check(reg["enc"])
    assert entry["origin"]["command"] == "emoget again" and entry["origin"]["generator_sha256"] == \
        registry.sha256_of(gpath)
    assert entry["origin"]["init"]["origin"]["command"] == "emoget first"  # the encoder it was fine-tuned from
    assert entry["metrics"]["heldout_generator_samples"]["n"] == TINY["val_size"]
    assert (wdir / "enc.retargeted.log.jsonl").exists()
    other = Generator(GeneratorConfig(resolution=16, z_dim=32, w_dim=32, mapping_layers=2, channel_base=256,
                                      channel_max=32, class_names=("a", "b", "c")), seed=0)
    with pytest.raises(WeightsError, match="another generator"):
        ship_encoder(tmp_path / "b", save_generator(other, tmp_path / "other"), name="enc", weights_dir=wdir)
    same_shape = save_generator(toy_generator().requires_grad_(False).apply(_perturb), tmp_path / "retrained")
    with pytest.raises(WeightsError, match="ship that generator first"):  # same shape, other weights
        ship_encoder(tmp_path / "b", same_shape, name="enc", weights_dir=wdir)


def _perturb(m):
    for p in m.parameters(recurse=False):
        p.add_(0.01)
