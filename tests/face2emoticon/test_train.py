import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from face2emoticon.checkpoint import load_generator, read_training_state
from face2emoticon.dataset import DatasetError, load_dataset
from face2emoticon.train import Trainer, TrainError, TrainOptions, train
from ui.cli import main

TOY = {"resolution": 16, "z_dim": 16, "w_dim": 16, "mapping_layers": 2, "channel_base": 256, "channel_max": 16, "batch": 4,
           "r1_interval": 2, "augment_p": 0.3, "ada_kimg": 1.0, "log_every": 2, "sample_every": 0, "samples_per_class": 2,
           "progress": False, "checkpoint_minutes": 1e9}


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    rng = np.random.default_rng(0)
    for cls, col in [("blue", (40, 40, 220)), ("red", (220, 40, 40))]:
        (root / cls).mkdir()
        for i in range(6):
            a = np.full((20, 24, 4), 255, np.uint8)  # non-square, with alpha
            x, y = rng.integers(2, 14, 2)
            a[y:y + 6, x:x + 6, :3] = col
            a[0, 0, 3] = 0
            Image.fromarray(a).save(root / cls / f"{i}.png")
    return root


def test_dataset_loads_resizes_and_caches(toy_data, tmp_path):
    ds = load_dataset(toy_data, resolution=16, cache_dir=tmp_path)
    assert ds.images.shape == (12, 3, 16, 16) and ds.images.dtype == torch.uint8
    assert ds.class_names == ("blue", "red") and ds.class_counts() == {"blue": 6, "red": 6}
    assert len(list(tmp_path.glob("dataset-16px-*.safetensors"))) == 1
    again = load_dataset(toy_data, resolution=16, cache_dir=tmp_path)
    assert torch.equal(again.images, ds.images) and again.manifest_sha256 == ds.manifest_sha256
    # data order: every image once per epoch, a pure function of (seed, step)
    idx = torch.cat([ds.indices_for_step(s, 4, seed=0) for s in range(3)])
    assert sorted(idx.tolist()) == list(range(12))
    assert torch.equal(ds.indices_for_step(5, 4, seed=0), ds.indices_for_step(5, 4, seed=0))
    # the same layout inside a zip (with one top-level folder) reads the same
    import zipfile

    with zipfile.ZipFile(tmp_path / "data.zip", "w") as zf:
        for f in sorted(toy_data.rglob("*.png")):
            zf.write(f, f"styles/{f.relative_to(toy_data)}")
    zipped = load_dataset(tmp_path / "data.zip", resolution=16)
    assert zipped.class_names == ds.class_names and torch.equal(zipped.images, ds.images)
    with pytest.raises(DatasetError, match="one subfolder per class"):
        load_dataset(tmp_path / "nope", resolution=16)


def _states(trainer):
    out = {f"{n}.{k}": v.clone() for n, m in trainer._modules().items() for k, v in m.state_dict().items()}
    for name, (opt, module) in trainer._optimizers().items():
        names = {id(p): n for n, p in module.named_parameters()}
        for p, st in opt.state.items():
            for k, v in st.items():
                out[f"{name}.{names[id(p)]}.{k}"] = torch.as_tensor(v).clone()
    return out


class _Kill(Exception):
    pass


def test_resume_after_kill_is_bit_for_bit(toy_data, tmp_path):
    opts = TrainOptions(**TOY, steps=7)
    full = Trainer(toy_data, tmp_path / "full", opts)
    full.run()
    assert full.step == 7

    def kill_at_6(step):
        if step == 6:
            raise _Kill  # dies without saving, like SIGKILL: steps 5-6 are lost

    killed = Trainer(toy_data, tmp_path / "killed", TrainOptions(**TOY, steps=7, checkpoint_steps=4))
    with pytest.raises(_Kill):
        killed.run(on_step=kill_at_6)
    assert read_training_state(tmp_path / "killed" / "checkpoint" / "state.safetensors")[1]["step"] == 4
    resumed = Trainer(toy_data, tmp_path / "killed", TrainOptions(**TOY, steps=7, checkpoint_steps=4))
    resumed.run()
    assert resumed.step == 7
    a, b = _states(full), _states(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert full.aug.state() == resumed.aug.state()
    log = [json.loads(x) for x in (tmp_path / "killed" / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [2, 4, 6, 7]


def test_run_folder_and_exports(toy_data, tmp_path):
    res = train(toy_data, tmp_path / "run", TrainOptions(**TOY, steps=3, metric_every=3, metric_samples=4))
    assert (tmp_path / "run" / "config.json").exists() and (tmp_path / "run" / "samples" / "step-0000003.png").exists()
    G = load_generator(res.generator_path)
    assert G.cfg.class_names == ("blue", "red")
    grid = np.asarray(Image.open(tmp_path / "run" / "samples" / "step-0000003.png"))
    assert grid.shape == (2 * 16, 2 * 16, 3)
    origin = json.loads((tmp_path / "run" / "G_ema.json").read_text())["origin"]
    assert origin["steps"] == 3 and len(origin["data_manifest_sha256"]) == 64
    metrics = json.loads((tmp_path / "run" / "metrics.jsonl").read_text())
    assert metrics["step"] == 3 and set(metrics["metrics"]) == {"blue", "red", "mean"}
    assert metrics["metrics"]["red"]["fd_vgg16"] > 0
    # resuming with a different architecture is refused
    with pytest.raises(TrainError, match="other options"):
        Trainer(toy_data, tmp_path / "run", TrainOptions(**{**TOY, "channel_max": 8}, steps=5)).run()


def test_finetune_with_freezing(toy_data, tmp_path):
    train(toy_data, tmp_path / "base", TrainOptions(**TOY, steps=2))
    opts = TrainOptions(**TOY, steps=2, base=str(tmp_path / "base"), freeze_d=1, freeze_mapping=True,
                        freeze_g_below=16)
    t = Trainer(toy_data, tmp_path / "ft", opts)
    before = {f"{n}.{k}": p.detach().clone() for n, m in (("G", t.G), ("D", t.D)) for k, p in m.named_parameters()}
    t.run()
    after = {f"{n}.{k}": p.detach() for n, m in (("G", t.G), ("D", t.D)) for k, p in m.named_parameters()}
    # FreezeD 1: the top D block (b16); the mapping (fc layers and class embedding); G blocks below 16 px
    frozen_blocks = ("D.b16.", "G.mapping.", "G.synthesis.b4.", "G.synthesis.b8.")
    trained_blocks = ("D.b8.", "D.b4.", "D.embed.", "G.synthesis.b16.")
    assert all(k.startswith(frozen_blocks + trained_blocks) for k in before)
    for prefix in frozen_blocks + trained_blocks:
        assert any(k.startswith(prefix) for k in before), prefix
    for k, old in before.items():
        if k.startswith(frozen_blocks):
            assert torch.equal(after[k], old), f"frozen {k} changed"
        else:
            assert not torch.equal(after[k], old), f"trainable {k} did not change"
    # a fine-tune from a base of another width resumes with the base's architecture
    train(toy_data, tmp_path / "wide", TrainOptions(**{**TOY, "channel_max": 32}, steps=1))
    narrow_flags = TrainOptions(**TOY, steps=1, base=str(tmp_path / "wide"))
    train(toy_data, tmp_path / "ft2", narrow_flags)
    again = Trainer(toy_data, tmp_path / "ft2", TrainOptions(**TOY, steps=2, base=str(tmp_path / "wide")))
    again.run()
    assert again.step == 2 and again.G.cfg.channel_max == 32


def test_finetune_says_when_the_base_has_no_discriminator(toy_data, tmp_path, caplog):
    train(toy_data, tmp_path / "base", TrainOptions(**TOY, steps=1))
    run_d = read_training_state(tmp_path / "base" / "checkpoint" / "state.safetensors")[0]
    with caplog.at_level(logging.WARNING, logger="face2emoticon.train"):
        Trainer(toy_data, tmp_path / "with-d", TrainOptions(**TOY, steps=1, base=str(tmp_path / "base")))
        # a generator file brings the discriminator its JSON names, from beside it
        t = Trainer(toy_data, tmp_path / "g-and-d", TrainOptions(**TOY, steps=1, base=str(tmp_path / "base" / "G_ema.safetensors")))
        assert "no discriminator" not in caplog.text
        for k, v in t.D.state_dict().items():
            assert torch.equal(v, run_d[f"D.{k}"]), k
        alone = tmp_path / "alone"
        alone.mkdir()
        for ext in ("safetensors", "json"):  # the generator copied without its discriminator
            (alone / f"G.{ext}").write_bytes((tmp_path / "base" / f"G_ema.{ext}").read_bytes())
        Trainer(toy_data, tmp_path / "no-d", TrainOptions(**TOY, steps=1, base=str(alone / "G.safetensors")))
    assert "has no discriminator" in caplog.text


def test_d_warmup_trains_only_the_discriminator_first(toy_data, tmp_path, caplog):
    train(toy_data, tmp_path / "base", TrainOptions(**TOY, steps=1))
    base = str(tmp_path / "base" / "G_ema.safetensors")
    with caplog.at_level(logging.WARNING, logger="face2emoticon.train"):
        tr = Trainer(toy_data, tmp_path / "warm", TrainOptions(**TOY, steps=4, base=base, d_warmup=2))
    assert "no discriminator" not in caplog.text  # the head start is what the warning asks for
    g0 = {k: v.clone() for k, v in tr.G.state_dict().items()}
    d0 = {k: v.clone() for k, v in tr.D.state_dict().items()}
    ema0 = {k: v.clone() for k, v in tr.G_ema.state_dict().items()}
    for _ in range(2):
        stats = tr.train_step()
        assert "loss_G" not in stats and "loss_D" in stats
    assert all(torch.equal(v, g0[k]) for k, v in tr.G.state_dict().items())
    assert all(torch.equal(v, ema0[k]) for k, v in tr.G_ema.state_dict().items())
    assert any(not torch.equal(v, d0[k]) for k, v in tr.D.state_dict().items())
    assert "loss_G" in tr.train_step()  # then both train
    assert any(not torch.equal(v, g0[k]) for k, v in tr.G.state_dict().items() if v.is_floating_point())


def test_g_lr_and_learning_rates_change_on_resume(toy_data, tmp_path):
    t = Trainer(toy_data, tmp_path / "run", TrainOptions(**TOY, steps=2, g_lr=0.0002))
    t.run()
    assert [g["lr"] for g in t.opt_G.param_groups] == [0.0002]
    assert t.opt_D.param_groups[0]["lr"] == pytest.approx(0.0025 * 2 / 3)  # lazy R1 every 2 steps
    # a resume may raise the generator's rate once D keeps up (the saved optimiser's rate is not kept)
    again = Trainer(toy_data, tmp_path / "run", TrainOptions(**TOY, steps=3, g_lr=0.001, lr=0.002))
    again.run()
    assert again.step == 3 and [g["lr"] for g in again.opt_G.param_groups] == [0.001]
    assert again.opt_D.param_groups[0]["lr"] == pytest.approx(0.002 * 2 / 3)


def test_cli_trains_and_resumes(toy_data, tmp_path, capsys):
    args = ["train-gan", str(toy_data), "--out", str(tmp_path / "cli"), "--resolution", "16", "--z-dim", "16",
            "--w-dim", "16", "--mapping-layers", "2", "--channel-base", "256", "--channel-max", "16", "--batch", "4",
            "--no-progress", "--sample-every", "0", "--log-every", "1"]
    assert main(args + ["--steps", "2"]) == 0
    assert main(args + ["--steps", "3"]) == 0
    assert "step 3" in capsys.readouterr().out
    log = [json.loads(x) for x in (tmp_path / "cli" / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [1, 2, 3]
    # the exported generator names every invocation that trained it, with the steps each one trained
    runs = json.loads((tmp_path / "cli" / "G_ema.json").read_text())["origin"]["invocations"]
    assert [(r["from_step"], r["to_step"]) for r in runs] == [(0, 2), (2, 3)]
    assert runs[0]["command"].endswith("--steps 2") and runs[1]["command"].endswith("--steps 3")
    assert all(r["threads"] >= 1 and r["started"] for r in runs)


@pytest.mark.slow
def test_sigkill_then_same_command_resumes_bit_for_bit(toy_data, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from face2emoticon.checkpoint import read_training_info

    steps = 20
    args = [sys.executable, "-m", "ui", "train-gan", str(toy_data), "--out", str(tmp_path / "k"), "--threads", "1",
            "--resolution", "16", "--z-dim", "16", "--w-dim", "16", "--mapping-layers", "2", "--channel-base", "256",
            "--channel-max", "16", "--batch", "4", "--r1-interval", "2", "--augment-p", "0.3", "--ada-kimg", "1",
            "--sample-every", "0", "--samples-per-class", "2", "--no-progress", "--checkpoint-steps", "1",
            "--steps", str(steps)]
    state = tmp_path / "k" / "checkpoint" / "state.safetensors"
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if state.exists() and read_training_info(state)["step"] >= 2:  # renamed into place: always complete
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = read_training_info(state)["step"]
    assert 2 <= killed_at < steps
    done = subprocess.run(args, check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    opts = TrainOptions(**{**TOY, "channel_max": 16}, steps=steps)
    full = Trainer(toy_data, tmp_path / "full", opts)
    full.run()
    resumed = load_generator(tmp_path / "k" / "G_ema").state_dict()
    for k, v in full.G_ema.state_dict().items():
        assert torch.equal(v, resumed[k]), k
