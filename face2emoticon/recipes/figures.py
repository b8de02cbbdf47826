"""Figures of a style generator: ``python -m face2emoticon.recipes.figures --weights stylegan2-emoget-64``.

Measured per style, all at the generator's resolution, one thread:

* ``fd_vgg16`` / ``kid_vgg16`` / ``precision`` / ``recall``: :func:`face2emoticon.metrics.per_class_metrics`
  between ``--n-fid`` training renders and as many samples (truncation 1) per class; ``real_vs_real``:
  the same between those renders and as many others, the floor that sampling noise alone gives;
  ``diversity``: mean LPIPS between random pairs of samples, and of renders (how varied each set is).
* ``inversion``: in-domain inversion of held-out renders (identities drawn with another seed, never
  trained on) into their own class: LPIPS-alex and PSNR of the mean-w start (0 steps) and after
  each of ``--invert-budgets`` steps (and from the encoder when ``--encoder`` is given), with each of
  ``--optimizers``.
* ``identity``: the product's key property. Each held-out identity's ``--invert-style`` render is
  inverted once (from the encoder's start when ``--encoder`` is given, as the pipeline does); the latent is moved to every style as the pipeline does
  (``w_s = mean_w(s) + (w - mean_w(k))``, strength 0) and the output's median skin and hair colour is
  compared (ΔE00, :mod:`face2emoticon.identity`) with the same identity's true render in that style.
  ``mean_face`` is the same comparison for the style's mean face (``w = mean_w(s)``), the baseline a
  person-blind model would score; a model that carries the person scores below it.
* ``photos``: the sample photos through detect -> align -> invert (the photo's vector proxy, as the
  pipeline does for this generator, or with ``--photo-target photo`` the photo itself) -> every style,
  ΔE00 of the photo's landmark-region colours against each output, and a sheet ``docs/styles_samples.png``.
* ``glasses``: whether glasses survive the learnt path (:func:`glasses_figures`): held-out identities with
  glasses inverted as proxies; the fraction of stills, per style, closer to the render with glasses than to
  the render without, shown through the x4 upscaler and through Lanczos.

Results go to ``--out`` (JSON) and, with ``--register``, into the weights registry entry's metrics.
"""
from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from face2emoticon import identity as ident
from face2emoticon.styledata import render
from face2emoticon.styledata.options import render_job
from face2emoticon.styledata.people import sample_identities
from face2emoticon.styledata.sheet import contact_sheet

log = logging.getLogger(__name__)
HELD_OUT_SEED = 777  # the training data uses seed 0


def _uint8(x: torch.Tensor) -> np.ndarray:
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def _tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.require(img, requirements=("C", "W"))).permute(2, 0, 1)[None].float() / 127.5 - 1


def held_out_renders(n: int, styles: tuple[str, ...], *, size: int) -> tuple[list, dict[str, list[np.ndarray]]]:
    """``n`` held-out identities and their neutral renders per style, ``uint8 [size,size,3]``."""
    people = sample_identities(n, seed=HELD_OUT_SEED)
    with tempfile.TemporaryDirectory() as tmp:
        jobs = [{**render_job(s, p), "out": f"{tmp}/{s}_{p.identity_id}.png", "size": 256}
                for s in styles for p in people]
        render(jobs, workers=1)
        out = {s: [np.asarray(Image.open(f"{tmp}/{s}_{p.identity_id}.png").convert("RGB")
                              .resize((size, size), Image.LANCZOS)) for p in people] for s in styles}
    return people, out


def swap(G, ws: torch.Tensor, src: int, dst: int, *, strength: float = 0.0) -> torch.Tensor:
    """The pipeline's class swap: ``mean_w(dst) + (1 - strength) * (ws - mean_w(src))`` → image ``[1,3,R,R]``."""
    with torch.no_grad():
        w = G.mean_w(dst)[:, None, :] + (1.0 - strength) * (ws - G.mean_w(src)[:, None, :])
        return G.synthesis(w, noise_mode="const")


def fid_figures(G, data: Path, *, n: int) -> dict:
    """Per style FD/KID/precision/recall of ``n`` samples against ``n`` renders, and under ``"real_vs_real"``
    the same figures between those renders and ``n`` others: the floor a perfect generator would reach; under
    ``"diversity"`` how varied the samples and the renders are (:func:`face2emoticon.metrics.lpips_diversity`)."""
    from face2emoticon.metrics import (
        generator_metrics,
        lpips_diversity,
        per_class_metrics,
        sample_images,
    )

    def load(files: list[Path]) -> list[np.ndarray]:
        return [np.asarray(Image.open(f).convert("RGB").resize((G.cfg.resolution,) * 2, Image.LANCZOS))
                for f in files]

    real, other = {}, {}
    for s in G.cfg.class_names:
        files = sorted((data / "styles" / s).glob("*.png"))
        real[s], other[s] = load(files[:n]), load(files[n: 2 * n])
    out = generator_metrics(G, real, n_fake=n, seed=0, size=G.cfg.resolution)
    if all(len(v) > 1 for v in other.values()):
        out["real_vs_real"] = per_class_metrics(real, other, size=G.cfg.resolution)
    out["diversity"] = {}
    for k, s in enumerate(G.cfg.class_names):
        fake = sample_images(G, k, min(n, 256), seed=k)
        out["diversity"][s] = {"samples": lpips_diversity(fake), "renders": lpips_diversity(real[s])}
    return out


def inversion_figures(G, renders: dict[str, list[np.ndarray]], *, per_style: int, budgets: tuple[int, ...],
                      encoder=None, optimizers: tuple[str, ...] = ("adam",)) -> dict:
    """Mean LPIPS-alex / PSNR per style of ``per_style`` held-out renders inverted into their own class, from
    each start with each optimizer, each step budget a run of its own (Adam's schedule spans the budget).
    Keys ``{start}_{steps}_{lpips|psnr}`` for Adam, ``{start}_lbfgs_{steps}_...`` for L-BFGS."""
    from face2emoticon.invert import invert, psnr
    from face2emoticon.lpips import get_lpips

    lp = get_lpips("alex")
    starts = {"mean": None} | ({"encoder": encoder} if encoder is not None else {})
    out: dict = {}
    for k, s in enumerate(G.cfg.class_names):
        acc: dict[str, list[float]] = {}
        for img in renders[s][:per_style]:
            target = _tensor(img)
            for start, enc in starts.items():
                for optimizer in optimizers:
                    tag = start if optimizer == "adam" else f"{start}_{optimizer}"
                    for n in sorted({0, *budgets}):
                        if n == 0 and optimizer != optimizers[0]:
                            continue  # the start itself does not depend on the optimizer
                        r = invert(G, img, class_index=k, num_steps=n, start=start, encoder=enc,
                                   optimizer=optimizer, generator=torch.Generator().manual_seed(0))
                        with torch.no_grad():
                            acc.setdefault(f"{tag}_{n}_lpips", []).append(float(lp(r.image.float(), target)[0]))
                            acc.setdefault(f"{tag}_{n}_psnr", []).append(float(psnr(r.image.float(), target)))
        out[s] = {key: round(float(np.mean(v)), 4) for key, v in acc.items()}
    out["mean"] = {key: round(float(np.mean([out[s][key] for s in G.cfg.class_names])), 4) for key in out[s]}
    return out


def identity_figures(G, people, renders: dict[str, list[np.ndarray]], templates, *, invert_style: str, n: int,
                     steps: int, encoder=None, optimizer: str = "adam") -> dict:
    from face2emoticon.invert import invert

    names = list(G.cfg.class_names)
    k = names.index(invert_style)
    rows, base_rows, sheet = {}, {}, []
    for i, p in enumerate(people[:n]):
        r = invert(G, renders[invert_style][i], class_index=k, num_steps=steps, encoder=encoder, optimizer=optimizer,
                   generator=torch.Generator().manual_seed(0))
        ws = r.ws if r.ws.ndim == 3 else r.ws[:, None, :].repeat(1, G.num_ws, 1)
        outs = {s: _uint8(swap(G, ws, k, j))[0] for j, s in enumerate(names)}
        means = {s: _uint8(swap(G, ws, k, j, strength=1.0))[0] for j, s in enumerate(names)}
        truth = {s: ident.style_colours(renders[s][i], s, templates) for s in names}
        rows[f"id{p.identity_id}"] = {s: ident.compare(truth[s], {s: outs[s]}, templates)[s] for s in names}
        base_rows[f"id{p.identity_id}"] = {s: ident.compare(truth[s], {s: means[s]}, templates)[s] for s in names}
        if i < 6:
            sheet.append([renders[invert_style][i]] + [outs[s] for s in names])
    return {"swap": ident.summary(rows), "mean_face": ident.summary(base_rows), "n": min(n, len(people)),
            "invert_steps": steps, "invert_style": invert_style, "invert_start": "encoder" if encoder else "mean",
            "optimizer": optimizer, "sheet": sheet,
            "table": ident.format_table(rows)}


def photo_figures(G, photos: list[Path], templates, *, invert_style: str, steps: int, encoder=None,
                  optimizer: str = "adam", upscaler=None, target: str = "proxy") -> dict:
    """The sample photos as the pipeline stylises them (strength 0), inverting ``target`` (``photo`` or its
    ``proxy``, see :class:`ui.pipeline.GanStylizer`). ΔE00 is measured on the generator's own stills against
    the photo; the sheet shows them as the page does, through ``upscaler`` (x4) when one is given, with the
    proxy beside the photo."""
    import landmarks
    from face2emoticon.upscale import upscale
    from ui.pipeline import GanStylizer

    names = list(G.cfg.class_names)
    k = names.index(invert_style)
    stylizer = GanStylizer(G, encoder=encoder, invert_style=invert_style)
    rows, sheet = {}, []
    for path in photos:
        img = landmarks.load_image(path)
        face = landmarks.detect(img)
        al = landmarks.align(img, face.points, size=256)
        ws = stylizer.invert(al.image, seed=0, steps=steps, points=al.points, optimizer=optimizer, target=target)
        outs = {s: _uint8(swap(G, ws, k, j))[0] for j, s in enumerate(names)}
        ref = ident.photo_colours(al.image, al.points)
        rows[path.stem] = ident.compare(ref, outs, templates)
        shown = [upscale(upscaler, outs[s]) if upscaler is not None else outs[s] for s in names]
        first = [al.image] if target == "photo" else [al.image, stylizer.proxy(al.image, al.points, seed=0)[0]]
        sheet.append(first + shown)
    return {"rows": rows, "summary": ident.summary(rows), "table": ident.format_table(rows), "sheet": sheet,
            "invert_steps": steps, "invert_start": "encoder" if encoder else "mean", "optimizer": optimizer,
            "target": target}


def glasses_figures(G, *, encoder, upscaler, invert_style: str, n: int, steps: int, strength: float = 0.25) -> dict:
    """Whether the learnt path carries glasses: ``n`` held-out identities with glasses, each drawn (vector art)
    in ``invert_style`` and inverted as the pipeline inverts a proxy; in every style, is the still at display
    size (256 px, through ``upscaler`` or Lanczos) closer (LPIPS-alex) to the identity's render with glasses
    than to the same render without? Returns the fraction of identities per style and overall, for both."""
    from face2emoticon.attributes import Attributes
    from face2emoticon.lpips import get_lpips
    from face2emoticon.upscale import upscale
    from face2emoticon.vector import Person
    from ui.pipeline import GanStylizer

    st = GanStylizer(G, encoder=encoder, invert_style=invert_style)
    lp = get_lpips("alex")
    people = [p for p in sample_identities(20 * n, seed=HELD_OUT_SEED) if p.glasses][:n]
    closer: dict[str, dict[str, list[bool]]] = {"upscaler": {}, "lanczos": {}}
    for p in people:
        person = Person(Attributes(skin=p.skin, hair_colour=p.hair_colour, hair_length=p.hair_length, glasses=True,
                                   beard=p.beard), seed=p.seed)
        latent = st.invert(st.vector.render(person, invert_style, size=256), seed=0, steps=steps)
        for s in st.styles:
            with_glasses = _tensor(st.vector.render(person, s, size=256))
            without = _tensor(st.vector.render(person.replace(glasses=False), s, size=256))
            if torch.equal(with_glasses, without):
                continue  # the style draws no glasses (Twemoji)
            still = st.render(latent, s, strength=strength, size=64, upscale=False)
            shown = {"upscaler": upscale(upscaler, still),
                     "lanczos": np.asarray(Image.fromarray(still).resize((256, 256), Image.Resampling.LANCZOS))}
            for k, img in shown.items():
                x = _tensor(img)
                with torch.no_grad():
                    closer[k].setdefault(s, []).append(float(lp(x, without)[0]) > float(lp(x, with_glasses)[0]))
    out = {k: {s: round(float(np.mean(v)), 3) for s, v in per.items()} for k, per in closer.items()}
    for k, per in closer.items():
        out[k]["all"] = round(float(np.mean([b for v in per.values() for b in v])), 3)
    return {**out, "n": len(people), "invert_steps": steps, "strength": strength}


def registry_metrics(figures: dict) -> dict:
    """The parts of a figures JSON that go into a registry entry's metrics (per-photo rows left out)."""
    return {k: {kk: vv for kk, vv in v.items() if kk != "rows"} for k, v in figures.items()
            if k in ("fid", "inversion", "identity", "photos", "glasses")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m face2emoticon.recipes.figures", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default="stylegan2-emoget-64", help="registry name or .safetensors path")
    p.add_argument("--encoder", default=None, help="encoder registry name or path (adds encoder-start figures)")
    p.add_argument("--data", type=Path, default=Path("data"))
    p.add_argument("--samples", type=Path, default=Path("samples"))
    p.add_argument("--docs", type=Path, default=Path("docs"))
    p.add_argument("--out", type=Path, default=Path("runs/figures.json"))
    p.add_argument("--n-fid", type=int, default=1000)
    p.add_argument("--held-out", type=int, default=48)
    p.add_argument("--invert-per-style", type=int, default=8)
    p.add_argument("--invert-steps", type=int, default=50, help="inversion steps of the identity figures")
    p.add_argument("--invert-budgets", type=int, nargs="+", default=[50],
                   help="step budgets of the inversion figures (each a run of its own; 0 is always measured)")
    p.add_argument("--identity-n", type=int, default=16)
    p.add_argument("--photo-steps", type=int, default=60, help="the pipeline's default inversion steps")
    p.add_argument("--photo-target", default="proxy", choices=("proxy", "photo"),
                   help="what the photo figures invert: the photo's vector proxy (the pipeline's default for "
                        "this generator) or the photo itself")
    p.add_argument("--optimizers", nargs="+", default=["adam"], choices=("adam", "lbfgs"),
                   help="optimizers of the inversion figures")
    p.add_argument("--optimizer", default="adam", choices=("adam", "lbfgs"),
                   help="optimizer of the identity and photo figures (from the encoder's start when --encoder)")
    p.add_argument("--skip", nargs="*", default=[], choices=("fid", "inversion", "identity", "photos", "glasses"))
    p.add_argument("--glasses-n", type=int, default=16, help="held-out identities with glasses (glasses figures)")
    p.add_argument("--register", action="store_true", help="merge the figures into the registry entry's metrics")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)

    import weights as registry
    from face2emoticon.checkpoint import load_generator

    path = registry.path_of(args.weights) if args.weights in registry.load_registry() else Path(args.weights)
    G = load_generator(path)
    encoder = None
    if args.encoder:
        from face2emoticon.encoder import load_encoder

        epath = registry.path_of(args.encoder) if args.encoder in registry.load_registry() else Path(args.encoder)
        encoder = load_encoder(epath)
    names = tuple(G.cfg.class_names)
    res = G.cfg.resolution
    invert_style = names[0]
    figures: dict = {"weights": str(args.weights), "resolution": res}
    timings = {}

    t = time.time()
    people, renders = held_out_renders(args.held_out, names, size=res)
    templates = ident.build_templates(resolution=res, styles=names)
    timings["renders"] = time.time() - t
    args.docs.mkdir(parents=True, exist_ok=True)
    # Samples per class at fixed seeds.
    from face2emoticon.metrics import sample_images

    grid = [list(_uint8(sample_images(G, k, 8, seed=1))) for k in range(len(names))]
    contact_sheet(grid, cell=64, row_labels=list(names), label_width=66).quantize(256).save(
        args.docs / "styles_generated.png", optimize=True)
    if "fid" not in args.skip:
        t = time.time()
        figures["fid"] = fid_figures(G, args.data, n=args.n_fid)
        figures["fid"]["n"] = args.n_fid
        timings["fid"] = time.time() - t
        log.info("fid %s", json.dumps(figures["fid"]))
    if "inversion" not in args.skip:
        t = time.time()
        figures["inversion"] = inversion_figures(G, renders, per_style=args.invert_per_style,
                                                 budgets=tuple(args.invert_budgets), encoder=encoder,
                                                 optimizers=tuple(args.optimizers))
        figures["inversion"]["n_per_style"] = args.invert_per_style
        figures["inversion"]["budgets"] = sorted({0, *args.invert_budgets})
        timings["inversion"] = time.time() - t
        log.info("inversion %s", json.dumps(figures["inversion"]["mean"]))
    if "identity" not in args.skip:
        t = time.time()
        idf = identity_figures(G, people, renders, templates, invert_style=invert_style, n=args.identity_n,
                               steps=args.invert_steps, encoder=encoder, optimizer=args.optimizer)
        contact_sheet(idf.pop("sheet"), cell=64, col_labels=["input"] + list(names)).quantize(256).save(
            args.docs / "styles_identity.png", optimize=True)
        figures["identity"] = idf
        timings["identity"] = time.time() - t
        log.info("identity swap %s\nmean face %s", json.dumps(idf["swap"]), json.dumps(idf["mean_face"]))
    if "photos" not in args.skip:
        t = time.time()
        photos = sorted(f for f in args.samples.iterdir() if f.suffix.lower() in (".png", ".jpg", ".jpeg"))
        from face2emoticon.upscale import load_upscaler

        upscaler = load_upscaler(registry.path_of("upscale-emoget-x4")) if "upscale-emoget-x4" in \
            registry.load_registry() else None
        pf = photo_figures(G, photos, templates, invert_style=invert_style, steps=args.photo_steps, encoder=encoder,
                           optimizer=args.optimizer, upscaler=upscaler, target=args.photo_target)
        first = ["photo"] if args.photo_target == "photo" else ["photo", f"proxy ({invert_style})"]
        contact_sheet(pf.pop("sheet"), cell=128, col_labels=first + list(names)).save(
            args.docs / "styles_samples.png", optimize=True)
        figures["photos"] = pf
        timings["photos"] = time.time() - t
        log.info("photos\n%s", pf["table"])
    if "glasses" not in args.skip:
        t = time.time()
        from face2emoticon.upscale import load_upscaler

        figures["glasses"] = glasses_figures(G, encoder=encoder, upscaler=load_upscaler(registry.path_of(
            "upscale-emoget-x4")), invert_style=invert_style, n=args.glasses_n, steps=args.photo_steps)
        timings["glasses"] = time.time() - t
        log.info("glasses %s", json.dumps(figures["glasses"]))
    figures["timings_s"] = {k: round(v, 1) for k, v in timings.items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(ident.dumps(figures) + "\n")
    print(f"figures in {args.out}")
    if args.register:
        entry = registry.get(args.weights)
        registry.register(entry.name, entry.file, kind=entry.kind, licence=entry.licence, origin=entry.origin,
                          metrics=registry_metrics(figures), description=entry.description)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
