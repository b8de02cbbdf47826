"""The ×4 upscaler: shapes, files, degradations and training on a toy model and drawn shapes."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from face2emoticon.train_upscale import (
    UpscaleTrainer,
    UpscaleTrainOptions,
    degrade,
    evaluate,
    plain_input,
    psnr,
    shade,
    train_upscaler,
)
from face2emoticon.upscale import (
    UpscalerConfig,
    build,
    load_upscaler,
    save_upscaler,
    to_tensor,
    upscale,
)
from landmarks.errors import EmogetError, WeightsError

TOY = {"channels": 8, "blocks": 1, "up_channels": "8,8"}


def cartoon(rng: np.random.Generator, size: int) -> np.ndarray:
    """uint8 [size,size,3]: flat-colour ellipses and boxes with dark outlines on a light background."""
    im = Image.new("RGB", (size, size), (242, 242, 242))
    d = ImageDraw.Draw(im)
    for _ in range(3):
        x0, y0 = rng.integers(0, size // 2, 2)
        w, h = rng.integers(size // 4, size // 2, 2)
        colour = tuple(int(c) for c in rng.integers(40, 256, 3))
        shape = d.ellipse if rng.random() < 0.5 else d.rectangle
        shape((int(x0), int(y0), int(x0 + w), int(y0 + h)), fill=colour, outline=(30, 20, 20),
              width=max(1, size // 32))
    return np.asarray(im)


@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    rng = np.random.default_rng(0)
    for style in ("dots", "boxes"):
        (root / style).mkdir()
        for i in range(8):
            Image.fromarray(cartoon(rng, 32)).save(root / style / f"{i:05d}.png")
    return root


def toy_options(**kw) -> UpscaleTrainOptions:
    base = dict(steps=10, batch=4, crop=32, lr=3e-3, per_style=0, holdout=2, val_per_style=1, val_every=0,
                sample_every=0, log_every=2, **TOY)
    return UpscaleTrainOptions(**{**base, **kw})


def trained_toy(seed: int = 3):
    model = build(UpscalerConfig(channels=8, blocks=1, up_channels=(8, 8)), seed=seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    return model.eval()


def test_shape_dtype_and_bicubic_start():
    model = build(UpscalerConfig(channels=8, blocks=1, up_channels=(8, 8)), seed=0).eval()
    assert sum(p.numel() for p in build().parameters()) < 300_000
    img = np.random.default_rng(0).integers(0, 256, (16, 12, 3), dtype=np.uint8)
    out = upscale(model, img)
    assert out.shape == (64, 48, 3) and out.dtype == np.uint8
    # an untrained model is bicubic: the residual tail starts at zero
    ref = F.interpolate(to_tensor(img), scale_factor=4, mode="bicubic", align_corners=False)
    assert torch.equal(model(to_tensor(img)), ref)
    with pytest.raises(ValueError, match="uint8"):
        upscale(model, img.astype(np.float32))


def test_save_load_round_trip_is_bit_exact(tmp_path):
    model = trained_toy()
    path = save_upscaler(model, tmp_path / "up", extra={"origin": {"steps": 1}})
    assert path == tmp_path / "up.safetensors"
    info = json.loads((tmp_path / "up.json").read_text())
    assert info["format"] == "emoget-upscaler/1" and info["config"]["up_channels"] == [8, 8]
    loaded = load_upscaler(tmp_path / "up.safetensors", "cpu")
    assert loaded.cfg == model.cfg and not loaded.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    img = np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    assert np.array_equal(upscale(model, img), upscale(loaded, img))


def test_bad_checkpoints_raise_clear_errors(tmp_path):
    with pytest.raises(WeightsError, match="no upscaler config"):
        load_upscaler(tmp_path / "missing.safetensors")
    save_upscaler(trained_toy(), tmp_path / "up")
    (tmp_path / "up.safetensors").write_bytes(b"not tensors")
    with pytest.raises(EmogetError, match="not a readable safetensors"):
        load_upscaler(tmp_path / "up")
    save_upscaler(trained_toy(), tmp_path / "up")
    info = json.loads((tmp_path / "up.json").read_text())
    (tmp_path / "up.json").write_text(json.dumps({**info, "config": {**info["config"], "channels": 12}}))
    with pytest.raises(WeightsError, match="shape mismatch"):
        load_upscaler(tmp_path / "up")
    (tmp_path / "up.json").write_text(json.dumps({**info, "format": "emoget-stylegan2/1"}))
    with pytest.raises(WeightsError, match="not an upscaler"):
        load_upscaler(tmp_path / "up")


def test_degrade_is_seeded_and_quarter_size():
    hr = torch.rand(3, 3, 32, 24) * 2 - 1
    a = degrade(hr, generator=torch.Generator().manual_seed(5))
    b = degrade(hr, generator=torch.Generator().manual_seed(5))
    assert a.shape == (3, 3, 8, 6) and torch.equal(a, b)
    assert torch.equal(a, ((a + 1) * 127.5).round() / 127.5 - 1)  # 8-bit levels
    assert not torch.equal(a, degrade(hr, generator=torch.Generator().manual_seed(6)))
    assert torch.equal(shade(hr, generator=torch.Generator(), p=0.0), hr)
    shaded = shade(hr, generator=torch.Generator().manual_seed(1), p=1.0)
    assert shaded.shape == hr.shape and shaded.abs().max() <= 1 and not torch.equal(shaded, hr)


def test_training_reduces_loss_and_resume_continues(shapes_dir, tmp_path):
    opts = toy_options(steps=60, lr=5e-3, plain_p=1.0)
    trainer = UpscaleTrainer(shapes_dir, tmp_path / "run", opts)
    assert len(trainer.images) == 12 and len(trainer.val_targets) == 2  # 2 of 8 held out per style
    batches = [trainer.batch(10_000 + i) for i in range(4)]

    def loss():
        trainer.model.eval()
        with torch.no_grad():
            return float(sum((trainer.model(x) - y).abs().mean() for x, y in batches))

    before = loss()
    trainer.run(val_lpips=False)
    assert trainer.step == 60 and loss() < 0.95 * before

    # interrupted at step 6 (Ctrl-C), then resumed to 10: the same weights as 10 steps in one go
    def interrupt(step):
        if step == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_upscaler(shapes_dir, tmp_path / "a", toy_options(), on_step=interrupt, val_lpips=False)
    resumed = train_upscaler(shapes_dir, tmp_path / "a", toy_options(steps=10), val_lpips=False)
    whole = train_upscaler(shapes_dir, tmp_path / "b", toy_options(steps=10), val_lpips=False)
    assert resumed.step == whole.step == 10
    a, b = load_upscaler(resumed.model_path), load_upscaler(whole.model_path)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    steps = [json.loads(ln)["step"] for ln in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6, 8, 10]
    with pytest.raises(EmogetError, match="other options"):
        train_upscaler(shapes_dir, tmp_path / "a", toy_options(steps=12, crop=16), val_lpips=False)


def test_evaluate_reports_both_inputs(shapes_dir):
    rng = np.random.default_rng(2)
    targets = [cartoon(rng, 32) for _ in range(2)]
    m = evaluate(trained_toy(), targets, lpips=False)
    assert m["n"] == 2 and set(m) == {"n", "degraded", "plain"}
    assert set(m["plain"]) == {"psnr_upscaler", "psnr_bicubic", "psnr_lanczos"}
    assert psnr(targets[0], targets[0]) == 99.0 and plain_input(targets[0]).shape == (8, 8, 3)


@pytest.mark.weights
def test_shipped_upscaler_beats_bicubic():
    import weights as registry

    model = load_upscaler(registry.path_of("upscale-emoget-x4", verify=True))
    rng = np.random.default_rng(0)
    targets = [cartoon(rng, 256) for _ in range(4)]
    renders = Path(__file__).resolve().parents[2] / "data" / "styles"
    if renders.is_dir():  # the held-out renders, when the data is there
        from face2emoticon.train_upscale import read_image, split_files

        _, _, val = split_files(renders, holdout=50)
        targets += [read_image(files[-1], size=256) for files in val.values()]
    m = evaluate(model, targets, lpips=False, inputs=("plain", "degraded"))
    assert m["plain"]["psnr_upscaler"] > m["plain"]["psnr_bicubic"] + 0.5, m
    assert m["degraded"]["psnr_upscaler"] > m["degraded"]["psnr_bicubic"], m


@pytest.fixture(scope="module")
def toy_gan(shapes_dir, tmp_path_factory):
    """A toy generator of the shapes' styles at a quarter of their size, and its encoder (files)."""
    from face2emoticon.checkpoint import save_generator
    from face2emoticon.config import GeneratorConfig
    from face2emoticon.encoder import Encoder, EncoderConfig, save_encoder
    from face2emoticon.networks import Generator

    root = tmp_path_factory.mktemp("gan")
    G = Generator(GeneratorConfig(resolution=8, z_dim=16, w_dim=16, mapping_layers=2, channel_base=64,
                                  channel_max=16, class_names=("boxes", "dots")), seed=0)
    E = Encoder(EncoderConfig.for_generator(G, channel_base=64, channel_max=16), seed=0)
    return {"generator": str(save_generator(G, root / "g")), "encoder": str(save_encoder(E, root / "e"))}


def _windows(img: np.ndarray, size: int) -> set[bytes]:
    return {np.ascontiguousarray(im[y:y + size, x:x + size]).tobytes() for im in (img, img[:, ::-1])
            for y in range(img.shape[0] - size + 1) for x in range(img.shape[1] - size + 1)}


def test_generator_redraws_are_inputs_with_the_clean_render_as_target(shapes_dir, toy_gan, tmp_path):
    t = UpscaleTrainer(shapes_dir, tmp_path / "a", toy_options(crop=16, redraw_p=1.0, shade_p=1.0, **toy_gan))
    assert t.redraws.shape == (len(t.images), 3, 8, 8) and t.redraws.dtype == torch.uint8
    redrawn = set().union(*(_windows(r.permute(1, 2, 0).numpy(), 4) for r in t.redraws))
    renders = set().union(*(_windows(r.permute(1, 2, 0).numpy(), 16) for r in t.images))
    lr, hr = t.batch(0)
    for x, y in zip(lr, hr, strict=True):
        assert ((x + 1) * 127.5).round().byte().permute(1, 2, 0).numpy().tobytes() in redrawn
        assert ((y + 1) * 127.5).round().byte().permute(1, 2, 0).numpy().tobytes() in renders, "target unshaded"
    val = t.validate(lpips=False)
    assert set(val) == {"n", "degraded", "plain", "redraw"} and val["redraw"]["psnr_upscaler"] > 0
    none = UpscaleTrainer(shapes_dir, tmp_path / "b", toy_options(crop=16, redraw_p=0.0, **toy_gan))
    lr0 = none.batch(0)[0]
    assert not any(((x + 1) * 127.5).round().byte().permute(1, 2, 0).numpy().tobytes() in redrawn for x in lr0)


def test_fitted_redraws_are_closer_to_the_renders_and_cached_per_run(shapes_dir, toy_gan, tmp_path):
    from face2emoticon.train_upscale import read_image, redraws

    images = torch.stack([torch.from_numpy(read_image(p)).permute(2, 0, 1)
                          for p in sorted((shapes_dir / "dots").iterdir())[:4]])
    target = torch.from_numpy(np.stack([plain_input(im.permute(1, 2, 0).numpy()) for im in images])).float()
    err = {n: (redraws(**toy_gan, images=images, classes=["dots"] * 4, steps=n).float() - target.permute(0, 3, 1, 2))
           .abs().mean().item() for n in (0, 15)}
    assert err[15] < err[0], err
    opts = toy_options(crop=16, redraw_steps=2, **toy_gan)
    first = UpscaleTrainer(shapes_dir, tmp_path / "run", opts)
    cache = tmp_path / "run" / "cache" / "redraws.safetensors"
    assert cache.exists()
    stamp = cache.stat().st_mtime_ns
    again = UpscaleTrainer(shapes_dir, tmp_path / "run", opts)
    assert torch.equal(first.redraws, again.redraws) and cache.stat().st_mtime_ns == stamp, "read back, not redone"
    UpscaleTrainer(shapes_dir, tmp_path / "run", toy_options(crop=16, redraw_steps=3, **toy_gan))
    assert cache.stat().st_mtime_ns != stamp, "other steps: redrawn"


def test_redraw_and_init_options_are_checked(shapes_dir, toy_gan, tmp_path):
    with pytest.raises(EmogetError, match="go together"):
        toy_options(generator=toy_gan["generator"])
    with pytest.raises(EmogetError, match="redraw_p"):
        toy_options(redraw_p=1.5, **toy_gan)
    small = tmp_path / "small"
    for style in ("boxes", "dots"):
        (small / style).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(cartoon(np.random.default_rng(i), 16)).save(small / style / f"{i}.png")
    with pytest.raises(EmogetError, match="32-px targets"):
        UpscaleTrainer(small, tmp_path / "r", toy_options(crop=16, **toy_gan))
    start = trained_toy()
    path = save_upscaler(start, tmp_path / "start")
    t = UpscaleTrainer(shapes_dir, tmp_path / "r", toy_options(init=str(path)))
    for a, b in zip(t.model.parameters(), start.parameters(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(EmogetError, match="same"):
        UpscaleTrainer(shapes_dir, tmp_path / "r", toy_options(init=str(path), channels=16))


def test_ship_a_restoring_run_keeps_the_replaced_model_and_refuses_another_start(tmp_path):
    """recipes.upscaler ship on a restoring run: scored on redraws of every held-out render (with the model
    it replaces), the replaced origin kept as ``init``; a run from other weights is refused."""
    import weights as registry
    from face2emoticon.checkpoint import save_generator
    from face2emoticon.config import GeneratorConfig
    from face2emoticon.encoder import Encoder, EncoderConfig, save_encoder
    from face2emoticon.networks import Generator
    from face2emoticon.recipes import upscaler as recipe

    data = tmp_path / "data"
    rng = np.random.default_rng(5)
    for style in ("boxes", "dots"):
        (data / "styles" / style).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(cartoon(rng, 256)).save(data / "styles" / style / f"{i:05d}.png")
    (data / "manifest.json").write_text(json.dumps({"manifest_sha256": "abc"}))
    G = Generator(GeneratorConfig(resolution=64, z_dim=8, w_dim=8, mapping_layers=1, channel_base=512,
                                  channel_max=8, class_names=("boxes", "dots")), seed=0)
    E = Encoder(EncoderConfig.for_generator(G, channel_base=512, channel_max=8), seed=0)
    gan = {"generator": str(save_generator(G, tmp_path / "g")), "encoder": str(save_encoder(E, tmp_path / "e"))}
    wdir = tmp_path / "weights"
    wdir.mkdir()
    shipped = save_upscaler(trained_toy(), wdir / "upscale-emoget-x4")
    registry.register("upscale-emoget-x4", shipped, kind="upscaler", licence="test", origin={"command": "first"},
                      registry_path=wdir / "registry.json")
    other = save_upscaler(trained_toy(seed=9), tmp_path / "other")
    opts = dict(steps=2, crop=32, holdout=1, redraw_p=0.5, **gan)
    train_upscaler(data / "styles", tmp_path / "run", toy_options(init=str(shipped), **opts), val_lpips=False,
                   command=f"emoget train-upscaler --init {shipped}")
    train_upscaler(data / "styles", tmp_path / "bad", toy_options(init=str(other), **opts), val_lpips=False)
    with pytest.raises(EmogetError, match="did not start from the shipped"):
        recipe.ship(tmp_path / "bad", data=data, weights_dir=wdir)
    entry = recipe.ship(tmp_path / "run", data=data, weights_dir=wdir)
    held = entry["metrics"]["heldout"]
    assert held["n"] == 2 and {"degraded", "plain", "redraw", "replaced"} <= set(held)
    assert set(held["replaced"]) == {"degraded", "plain", "redraw"}
    assert entry["origin"]["init"] == {"command": "first"} and "--init" in entry["origin"]["executed"]
    assert (wdir / "upscale-emoget-x4.restore.log.jsonl").exists()
    assert registry.sha256_of(wdir / "upscale-emoget-x4.safetensors") == \
        registry.sha256_of(tmp_path / "run" / "upscaler.safetensors")


def test_a_run_that_predates_an_option_resumes_with_its_default(tmp_path):
    from face2emoticon.runloop import check_resume_options
    from face2emoticon.train_upscale import RESUME_MUTABLE

    saved = {k: v for k, v in UpscaleTrainOptions().to_json().items() if k not in ("redraw_p", "init")}
    check_resume_options(tmp_path, saved, UpscaleTrainOptions(steps=9), RESUME_MUTABLE)
    with pytest.raises(EmogetError, match="--redraw-p was 0.5, now 0.7"):
        check_resume_options(tmp_path, saved, UpscaleTrainOptions(redraw_p=0.7), RESUME_MUTABLE)
