import pytest

from face2emoticon.styles import (
    STYLE_NAMES,
    STYLES,
    StyleNotFound,
    class_index,
    get_style,
)
from landmarks.errors import EmogetError


def test_registry_names_are_unique_and_ordered():
    assert len(set(STYLE_NAMES)) == len(STYLE_NAMES) == len(STYLES)
    assert 4 <= len(STYLES) <= 8
    assert [class_index(n) for n in STYLE_NAMES] == list(range(len(STYLES)))


def test_every_style_records_package_version_and_licence():
    for s in STYLES:
        assert "@" in s.package.lstrip("@"), s.package  # name@version
        assert s.licence and s.licence_url.startswith("https://")
        assert s.kind in ("dicebear", "emoji")
        assert s.name in s.attribution or s.title in s.attribution


def test_span_human_like_and_emoji():
    kinds = {s.kind for s in STYLES}
    assert kinds == {"dicebear", "emoji"}
    full = [s for s in STYLES if {"skin", "hair_colour", "hair_length", "glasses", "beard"} <= set(s.carries)]
    assert len(full) >= 3


def test_unknown_style_says_what_to_do():
    with pytest.raises(StyleNotFound, match="emoget styles") as info:
        get_style("vaporwave")
    assert isinstance(info.value, EmogetError)


def test_names_are_sorted_like_training_class_folders():
    assert list(STYLE_NAMES) == sorted(STYLE_NAMES)


def _toy_run(tmp_path, class_names):
    import json

    from face2emoticon.checkpoint import save_generator
    from face2emoticon.config import GeneratorConfig
    from face2emoticon.networks import Generator

    run = tmp_path / "run"
    run.mkdir()
    cfg = GeneratorConfig(resolution=8, z_dim=8, w_dim=8, mapping_layers=1, channel_base=64, channel_max=8,
                          class_names=class_names)
    save_generator(Generator(cfg, seed=0), run / "G_ema", extra={"origin": {"steps": 3, "wall_time_s": 1.0}})
    (run / "config.json").write_text(json.dumps({"options": {"minutes": 1.0}}))
    (run / "log.jsonl").write_text('{"step": 3}\n')
    return run


def test_ship_copies_and_registers_the_ema_generator(tmp_path):
    import weights as registry
    from face2emoticon.checkpoint import load_generator
    from face2emoticon.recipes.default import ship

    run = _toy_run(tmp_path, STYLE_NAMES)
    wdir = tmp_path / "weights"
    wdir.mkdir()
    data = tmp_path / "data"
    data.mkdir()
    (data / "manifest.sha256").write_text("ab" * 32 + "  manifest.jsonl\n")
    entry = ship(run, name="toy", data=data, weights_dir=wdir, metrics={"fid": 1.0})
    assert entry["origin"]["data_manifest_sha256"] == "ab" * 32 and entry["origin"]["steps"] == 3
    assert "emoget train-gan" in entry["origin"]["command"] and "CC BY 4.0" in entry["licence"]
    reg = registry.load_registry(wdir / "registry.json")
    registry.check(reg["toy"])
    assert load_generator(reg["toy"].file).cfg.class_names == STYLE_NAMES
    assert (wdir / "toy.log.jsonl").exists()


def test_ship_stage_2_brings_the_discriminator_and_keeps_stage_1_log(tmp_path):
    import json

    import torch

    import weights as registry
    from face2emoticon.checkpoint import discriminator_beside, save_discriminator
    from face2emoticon.config import GeneratorConfig
    from face2emoticon.networks import Discriminator, DiscriminatorConfig
    from face2emoticon.recipes.default import ship
    from face2emoticon.train import load_base

    run = _toy_run(tmp_path, STYLE_NAMES)
    G_cfg = json.loads((run / "G_ema.json").read_text())["config"]
    D = Discriminator(DiscriminatorConfig.matching(GeneratorConfig.from_json(G_cfg)), seed=1)
    save_discriminator(D, run / "D")
    wdir = tmp_path / "weights"
    wdir.mkdir()
    (wdir / "toy.log.jsonl").write_text('{"step": 1}\n')  # stage 1's
    ship(run, name="toy", data=tmp_path, weights_dir=wdir, stage=2)
    reg = registry.load_registry(wdir / "registry.json")
    assert reg["toy-D"].kind == "discriminator"
    registry.check(reg["toy-D"])
    registry.check(reg["toy"])
    assert reg["toy"].origin["discriminator"] == "toy-D" and "--g-lr" in reg["toy"].origin["command"]
    assert (wdir / "toy.log.jsonl").read_text() == '{"step": 1}\n' and (wdir / "toy.continued.log.jsonl").exists()
    assert discriminator_beside(wdir / "toy.safetensors") == wdir / "toy-D.safetensors"
    base = load_base(wdir / "toy.safetensors")  # further training starts with the trained D
    assert all(torch.equal(v, D.state_dict()[k]) for k, v in base["D"].items())


def test_keep_registers_a_training_checkpoint_with_its_discriminator_and_figures(tmp_path):
    import json

    import weights as registry
    from face2emoticon.checkpoint import save_discriminator
    from face2emoticon.config import GeneratorConfig
    from face2emoticon.networks import Discriminator, DiscriminatorConfig
    from face2emoticon.recipes.default import keep
    from landmarks.errors import WeightsError

    run = _toy_run(tmp_path, STYLE_NAMES)
    wdir = tmp_path / "weights"
    wdir.mkdir()
    with pytest.raises(WeightsError):  # no discriminator: a kept run could not resume
        keep(run, name="toy-stage2", data=tmp_path, weights_dir=wdir)
    G_cfg = json.loads((run / "G_ema.json").read_text())["config"]
    save_discriminator(Discriminator(DiscriminatorConfig.matching(GeneratorConfig.from_json(G_cfg)), seed=1), run / "D")
    figures = tmp_path / "figures.json"
    figures.write_text(json.dumps({"weights": "x", "fid": {"mean": {"fd_vgg16": 70.0}},
                                   "photos": {"rows": {"a": {}}, "summary": {"micah": {"skin": 5.0}}}}))
    entry = keep(run, name="toy-stage2", data=tmp_path, weights_dir=wdir, figures=figures)
    assert entry["kind"] == "checkpoint" and entry["path"] == "training/toy-stage2/G_ema.safetensors"
    assert entry["metrics"] == {"fid": {"mean": {"fd_vgg16": 70.0}}, "photos": {"summary": {"micah": {"skin": 5.0}}}}
    assert entry["origin"]["total"]["steps"] > entry["origin"]["steps"] == 3  # stage 1 + this run
    reg = registry.load_registry(wdir / "registry.json")
    for name in ("toy-stage2", "toy-stage2-D"):
        registry.check(reg[name])
    kept = wdir / "training" / "toy-stage2"
    assert {f.name for f in kept.iterdir()} == {"G_ema.safetensors", "G_ema.json", "D.safetensors", "D.json",
                                                "config.json", "log.jsonl", "figures.json"}


def test_ship_refuses_a_generator_with_other_classes(tmp_path):
    from face2emoticon.recipes.default import ship
    from landmarks.errors import WeightsError

    run = _toy_run(tmp_path, ("a", "b"))
    with pytest.raises(WeightsError, match="default styles"):
        ship(run, name="toy", data=tmp_path, weights_dir=tmp_path)


@pytest.mark.weights
def test_shipped_generator_draws_every_default_style():
    import torch

    import weights as registry
    from face2emoticon.checkpoint import load_generator

    G = load_generator(registry.path_of("stylegan2-emoget-64", verify=True))
    assert G.cfg.class_names == STYLE_NAMES and G.cfg.resolution == 64
    z = torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(0))
    imgs = [G(z, torch.full((2,), k, dtype=torch.long), noise_mode="const") for k in range(len(STYLE_NAMES))]
    assert all(x.shape == (2, 3, 64, 64) and torch.isfinite(x).all() for x in imgs)
    # Classes are distinct styles: the same z gives different images per class.
    assert (imgs[0] - imgs[-1]).abs().mean() > 0.05
