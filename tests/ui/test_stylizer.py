"""The pipeline's GAN adapter on a toy conditional generator (16 px, few channels)."""
import numpy as np
import pytest
import torch
from PIL import Image

from face2emoticon.checkpoint import save_generator
from face2emoticon.config import GeneratorConfig
from face2emoticon.networks import Generator
from landmarks.errors import WeightsError
from ui.pipeline import GanStylizer, OptionsError, load_stylizer


@pytest.fixture(scope="module")
def toy_g():
    cfg = GeneratorConfig(resolution=16, z_dim=16, w_dim=16, mapping_layers=2, channel_base=256, channel_max=16,
                          class_names=("plain", "fancy"))
    return Generator(cfg, seed=1)


def test_invert_then_render_every_style(toy_g):
    s = GanStylizer(toy_g)
    assert s.styles == ["plain", "fancy"] and s.resolution == 16
    with torch.no_grad():
        img = toy_g(torch.randn(1, 16, generator=torch.Generator().manual_seed(3)), torch.tensor([0]))
    crop = ((img[0].permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).byte().numpy()
    seen = []
    ws = s.invert(crop, seed=0, steps=3, progress=seen.append)
    assert ws.shape == (1, toy_g.num_ws, 16) and seen[-1] == 1.0
    again = s.invert(crop, seed=0, steps=3)
    assert torch.equal(ws, again), "same seed, same latent"
    a = s.render(ws, "plain", strength=0.0, size=32)
    b = s.render(ws, "fancy", strength=0.0, size=32)
    assert a.shape == b.shape == (32, 32, 3) and a.dtype == np.uint8 and not np.array_equal(a, b)
    # strength 1 is the style's mean face, whoever the person
    other = s.render(ws + 0.5, "fancy", strength=1.0, size=16)
    assert np.array_equal(other, s.render(ws, "fancy", strength=1.0, size=16))
    with pytest.raises(OptionsError):
        s.render(ws, "nope", strength=0.0, size=16)


def test_load_stylizer_from_a_path(toy_g, tmp_path):
    path = save_generator(toy_g, tmp_path / "g")
    s = load_stylizer(str(path))
    assert s.styles == ["plain", "fancy"]
    with pytest.raises(Exception, match="not found"):
        load_stylizer(str(tmp_path / "missing.safetensors"))


def _toy_unconditional(seed):
    cfg = GeneratorConfig(resolution=16, z_dim=16, w_dim=16, mapping_layers=2, channel_base=256, channel_max=16)
    return Generator(cfg, seed=seed)


def _crop(G, seed=3):
    with torch.no_grad():
        img = G(torch.randn(1, 16, generator=torch.Generator().manual_seed(seed)))
    return ((img[0].permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).byte().numpy()


def test_unconditional_weights_are_one_style_named_after_the_file(tmp_path):
    G = _toy_unconditional(2)
    path = save_generator(G, tmp_path / "toon-faces")
    s = load_stylizer(str(path))
    assert s.styles == ["toon-faces"] and not s.conditional
    ws = s.invert(_crop(G), seed=0, steps=2)
    img = s.render(ws, "toon-faces", strength=0.0, size=16)
    assert img.shape == (16, 16, 3)


def test_blending_inverts_in_the_base_and_renders_with_the_blend(tmp_path):
    base = _toy_unconditional(2)
    tuned = _toy_unconditional(2)
    with torch.no_grad():  # a "fine-tune": only the 16-px block moves
        for name, p in tuned.named_parameters():
            if name.startswith("synthesis.b16."):
                p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(7)) * 0.5)
    base_path = save_generator(base, tmp_path / "base")
    tuned_path = save_generator(tuned, tmp_path / "tuned")
    s = load_stylizer(str(tuned_path), base=str(base_path), blend_resolution=16)
    crop = _crop(base)
    ws = s.invert(crop, seed=0, steps=2)
    ws_base = load_stylizer(str(base_path)).invert(crop, seed=0, steps=2)
    assert torch.allclose(ws, ws_base), "the photo is inverted in the base generator"
    blended = s.render(ws, s.styles[0], strength=0.0, size=16)
    only_base = load_stylizer(str(base_path)).render(ws, "base", strength=0.0, size=16)
    assert not np.array_equal(blended, only_base), "the 16-px block comes from the tuned generator"
    # a swap above the output resolution is the base generator exactly
    same = load_stylizer(str(tuned_path), base=str(base_path), blend_resolution=32).render(
        ws, s.styles[0], strength=0.0, size=16)
    assert np.array_equal(same, only_base)


def test_blending_different_architectures_is_a_clear_error(toy_g, tmp_path):
    base_path = save_generator(_toy_unconditional(2), tmp_path / "base")
    other = GeneratorConfig(resolution=16, z_dim=16, w_dim=8, mapping_layers=2, channel_base=256, channel_max=16)
    other_path = save_generator(Generator(other, seed=0), tmp_path / "other")
    with pytest.raises(WeightsError, match="blend"):
        load_stylizer(str(other_path), base=str(base_path))


def test_unreadable_weights_are_a_clear_error(toy_g, tmp_path):
    path = save_generator(toy_g, tmp_path / "bad")
    path.write_bytes(b"not a checkpoint")  # the JSON config is fine, the tensors are not
    with pytest.raises(WeightsError, match="not a readable safetensors"):
        load_stylizer(str(path))
    lonely = tmp_path / "lonely.safetensors"
    lonely.write_bytes(b"x")
    with pytest.raises(WeightsError, match="json"):
        load_stylizer(str(lonely))


class FakeVector:
    """The proxy's renderer without Node: a person is a flat colour per skin tone, the style a stripe."""

    def __init__(self):
        self.calls = []

    def invert(self, crop, *, points, seed):
        from face2emoticon.attributes import Attributes
        from face2emoticon.vector import Person

        return Person(Attributes(skin=1, hair_colour="brown", hair_length="short", glasses=False, beard=False), seed)

    def render(self, person, style, *, size):
        self.calls.append((person.attributes.skin, person.seed, style, size))
        img = np.full((size, size, 3), 40 + 50 * person.attributes.skin, np.uint8)
        img[: size // 3] = (200, 30, 30) if style == "avataaars" else (30, 30, 200)
        return img


def _vector_style_g(seed=1):
    cfg = GeneratorConfig(resolution=16, z_dim=16, w_dim=16, mapping_layers=2, channel_base=256, channel_max=16,
                          class_names=("avataaars", "twemoji"))
    return Generator(cfg, seed=seed)


def test_auto_target_is_the_proxy_only_for_generators_of_the_vector_styles(toy_g):
    assert GanStylizer(_vector_style_g()).resolve_target("auto") == "proxy"
    other = GanStylizer(toy_g)  # its styles are not drawn by the vector renderer
    assert other.resolve_target("auto") == "photo" and other.resolve_target("photo") == "photo"
    with pytest.raises(OptionsError, match="--invert-target photo"):
        other.resolve_target("proxy")
    blend = GanStylizer(_vector_style_g(), invert_G=_vector_style_g(seed=2))  # inverted in a base: photos
    assert blend.resolve_target("auto") == "photo"


def test_proxy_inversion_inverts_the_drawing_with_the_users_attributes():
    from face2emoticon.invert import invert

    G, vector = _vector_style_g(), FakeVector()
    st = GanStylizer(G, vector=vector)
    photo = np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)
    points = np.random.default_rng(1).uniform(60, 200, (68, 2)).astype(np.float32)
    ws = st.invert(photo, seed=4, steps=3, points=points, target="proxy", attributes={"skin": 3})
    assert vector.calls == [(3, 4, "avataaars", 256)], "drawn in the inversion style with the user's skin tone"
    drawn = vector.render(vector.invert(photo, points=points, seed=4).replace(skin=3), "avataaars", size=256)
    direct = invert(G, drawn, class_index=0, num_steps=3, optimizer="lbfgs", generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(ws, direct.ws.detach())
    assert not torch.equal(ws, st.invert(photo, seed=4, steps=3, points=points, target="photo"))
    with pytest.raises(Exception, match="landmarks"):
        st.invert(photo, seed=4, steps=3, target="proxy")


def test_pipeline_inverts_the_proxy_with_its_own_step_default():
    import dataclasses

    from pipeline_fakes import fake_stages

    from ui.pipeline import PHOTO_STEPS, PROXY_STEPS, Pipeline, RenderOptions

    seen = []

    class Recording(GanStylizer):
        def invert(self, crop, **kw):
            seen.append({k: kw.get(k) for k in ("steps", "target", "attributes")} | {"size": crop.shape[0]})
            return super().invert(crop, **{**kw, "steps": 0})

    st = Recording(_vector_style_g(), vector=FakeVector())
    pipe = Pipeline(stages=dataclasses.replace(fake_stages(), stylizer=lambda *a, **k: st))
    photo = np.full((64, 64, 3), 120, np.uint8)
    options = RenderOptions(stylizer="gan", styles=("twemoji",), frames=2, skin=2)
    pipe.render(photo, options=options)
    pipe.render(photo, options=options.replace(invert_target="photo"))
    pipe.render(photo, options=options.replace(invert_target="photo", invert_steps=5))
    assert seen == [{"steps": PROXY_STEPS, "target": "proxy", "attributes": {"skin": 2}, "size": 256},
                    {"steps": PHOTO_STEPS, "target": "photo", "attributes": {"skin": 2}, "size": 256},
                    {"steps": 5, "target": "photo", "attributes": {"skin": 2}, "size": 256}]
    with pytest.raises(OptionsError, match="invert_target"):
        RenderOptions(invert_target="sketch")
    st.vector.calls.clear()
    pipe.warm(options)  # a batch worker's warm-up starts the proxy's renderer too
    assert [c[2:] for c in st.vector.calls] == [("avataaars", 64)]


@pytest.mark.weights
def test_shipped_gan_draws_a_photo_through_its_proxy_like_the_vector_art(samples_dir):
    """Inverting the photo's vector proxy (the default) gives stills much closer to the person's own vector
    drawing in every style than inverting the photo itself: the generator stays in its domain."""
    import landmarks
    from face2emoticon.lpips import get_lpips
    from ui.pipeline import load_stylizer

    st = load_stylizer()
    img = landmarks.load_image(samples_dir / "grace_hopper.jpg")
    al = landmarks.align(img, landmarks.detect(img).points, size=256)
    person = st.proxy(al.image, al.points, seed=0)[1]
    assert person.attributes.glasses and person.attributes.hair_colour == "grey"
    lp = get_lpips("alex")

    def t(a):
        return torch.from_numpy(a.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1

    dist = {}
    for target in ("proxy", "photo"):
        latent = st.invert(al.image, seed=0, steps=10, points=al.points, target=target)
        dist[target] = np.mean([float(lp(t(st.render(latent, s, strength=0.25, size=64, upscale=False)),
                                         t(st.vector.render(person, s, size=64)))) for s in st.styles])
    assert dist["proxy"] < 0.2 and dist["proxy"] < 0.6 * dist["photo"], dist


@pytest.mark.weights
def test_shipped_gan_carries_the_photo_into_every_style(samples_dir):
    """The shipped generator, encoder and upscaler end to end on a real photo: a 256-px still per style whose
    skin is closer to the photo's than the style's mean face is (the person is carried, not a stock face)."""
    import landmarks
    from face2emoticon import identity as ident
    from face2emoticon.styles import STYLE_NAMES
    from ui.pipeline import load_stylizer

    st = load_stylizer()
    assert st.encoder is not None and st.upscaler is not None
    img = landmarks.load_image(samples_dir / "astronaut.png")
    al = landmarks.align(img, landmarks.detect(img).points, size=256)
    latent = st.invert(al.image, seed=0, steps=30, points=al.points)
    templates = ident.build_templates(resolution=64, styles=STYLE_NAMES, identities=8)
    photo = ident.photo_colours(al.image, al.points)
    ours, mean_face = {}, {}
    for s in STYLE_NAMES:
        still = st.render(latent, s, strength=0.0, size=256)
        assert still.shape == (256, 256, 3) and still.dtype == np.uint8 and still.std() > 10
        small = np.asarray(Image.fromarray(still).resize((64, 64), Image.Resampling.LANCZOS))
        ours[s] = small
        mean_face[s] = st.render(latent, s, strength=1.0, size=64)
    skin = [v["skin"] for v in ident.compare(photo, ours, templates).values() if v.get("skin") is not None]
    base = [v["skin"] for v in ident.compare(photo, mean_face, templates).values() if v.get("skin") is not None]
    assert len(skin) == len(STYLE_NAMES) and np.mean(skin) < np.mean(base), (skin, base)
