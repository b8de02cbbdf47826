"""Landmark accuracy and speed: the default back-end (MediaPipe → 68) against dlib's 68-point model.

Accuracy: NME = mean point distance / inter-ocular distance (dlib's outer eye corners,
iBUG 36-45), per region, on the bundled sample photos (held out from the 478→68 map's
fitting) and on mirrored / rotated / rescaled variants of them. Targets: overall ≤ 0.06,
eyes and mouth ≤ 0.04.

Speed: wall time of ``detect`` per photo scaled to 512 px on the long side, after
warm-up, with the process pinned to one CPU core; dlib (HOG detector + shape
predictor) on the same photos is the in-process baseline. Target ≤ 50 ms.
"""
from __future__ import annotations

import os
import statistics
import time
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
TARGETS = {"overall": 0.06, "eyes": 0.04, "mouth": 0.04}


@contextmanager
def one_core():
    """Pin this process (and the threads it starts) to a single CPU core."""
    if not hasattr(os, "sched_setaffinity"):
        yield None
        return
    before = os.sched_getaffinity(0)
    core = min(before)
    os.sched_setaffinity(0, {core})
    try:
        yield core
    finally:
        os.sched_setaffinity(0, before)


def variants(image: np.ndarray):
    """(name, image) pairs: the photo, mirrored, rotated ±10°, and at 0.6x size."""
    h, w = image.shape[:2]
    yield "original", image
    yield "mirrored", np.ascontiguousarray(image[:, ::-1])
    for angle in (-10, 10):
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        yield f"rotated {angle:+d}", cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REFLECT_101)
    yield "scaled 0.6", cv2.resize(image, (int(w * 0.6), int(h * 0.6)), interpolation=cv2.INTER_AREA)


def nme_by_region(points: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """Per-region and overall NME of ``points [68,2]`` against ``ref [68,2]``."""
    from landmarks.mesh68 import IBUG68_REGIONS

    err = np.linalg.norm(points - ref, axis=1) / np.linalg.norm(ref[45] - ref[36])
    out = {name: float(err[list(r)].mean()) for name, r in IBUG68_REGIONS.items()}
    out["overall"] = float(err.mean())
    return out


def _pair(image: np.ndarray):
    """(mediapipe face, dlib face) for the same person: dlib's face whose box holds mediapipe's nose tip."""
    from landmarks import detect_all

    ours = detect_all(image)
    refs = detect_all(image, backend="dlib")
    if not ours or not refs:
        return None
    face = ours[0]
    for ref in refs:
        x0, y0, x1, y1 = ref.box
        if x0 <= face.points[30, 0] <= x1 and y0 <= face.points[30, 1] <= y1:
            return face, ref
    return None


def accuracy() -> list[tuple[str, dict[str, float]]]:
    from landmarks import load_image

    rows = []
    for path in sorted(SAMPLES.glob("*.*")):
        if path.suffix.lower() not in (".png", ".jpg", ".jpeg"):
            continue
        image = load_image(path)
        for name, var in variants(image):
            pair = _pair(var)
            if pair is None:
                print(f"  {path.name} {name}: no matching face from both back-ends, skipped")
                continue
            rows.append((f"{path.name} {name}", nme_by_region(pair[0].points, pair[1].points)))
    return rows


def latency(images: list[np.ndarray], backend: str, *, repeats: int = 15) -> float:
    """Median seconds per ``detect`` call, after two warm-up calls per image."""
    from landmarks import detect

    for img in images:
        detect(img, backend=backend)
        detect(img, backend=backend)
    times = []
    for _ in range(repeats):
        for img in images:
            t0 = time.perf_counter()
            detect(img, backend=backend)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _to_512(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    k = 512 / max(h, w)
    return cv2.resize(image, (round(w * k), round(h * k)), interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC)


def main() -> dict:
    from landmarks import load_image

    regions = ["jaw", "brows", "nose", "eyes", "mouth", "overall"]
    rows = accuracy()
    print("NME of mediapipe->68 vs dlib 68-point (inter-ocular = outer eye corners)")
    print(f"  {'photo':32s}" + "".join(f"{r:>9s}" for r in regions))
    for name, nme in rows:
        print(f"  {name:32s}" + "".join(f"{nme[r]:9.4f}" for r in regions))
    originals = [nme for name, nme in rows if name.endswith("original")]
    summary = {}
    for label, subset in (("samples", originals), ("all variants", [n for _, n in rows])):
        mean = {r: float(np.mean([n[r] for n in subset])) for r in regions}
        summary[label] = mean
        print(f"  {'mean, ' + label:32s}" + "".join(f"{mean[r]:9.4f}" for r in regions))
    for key, target in TARGETS.items():
        got = summary["samples"][key]
        print(f"  target {key} <= {target}: {got:.4f} ({'met' if got <= target else 'MISSED'})")

    images = [_to_512(load_image(p)) for p in sorted(SAMPLES.glob("*.*")) if p.suffix.lower() in (".png", ".jpg")]
    with one_core() as core:
        mp_s = latency(images, "mediapipe")
        dlib_s = latency(images, "dlib", repeats=5)
    where = f"core {core}" if core is not None else "all cores (no affinity control here)"
    print(f"latency per 512-px photo, after warm-up, pinned to {where}:")
    print(f"  mediapipe {mp_s * 1e3:7.1f} ms   (target <= 50 ms: {'met' if mp_s <= 0.05 else 'MISSED'})")
    print(f"  dlib      {dlib_s * 1e3:7.1f} ms   (baseline)")
    print(f"  ratio mediapipe / dlib: {mp_s / dlib_s:.2f}")
    return {"nme": summary, "latency_s": {"mediapipe": mp_s, "dlib": dlib_s}}


if __name__ == "__main__":
    main()
