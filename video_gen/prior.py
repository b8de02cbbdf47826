"""The expression prior: action-unit curves → 68-point landmark motion, from a model learned on real faces.

py-feat 2.1.5 (MIT) ships ``au_to_mesh_pls_v4.npz``, a partial-least-squares model
from 20 FACS action-unit intensities (plus head pose) to the 478-vertex MediaPipe
face mesh, fitted on faces its detector measured. Its coefficients are, per AU,
the mesh displacement that AU causes. :func:`build_basis` maps them through the
landmarks stage's one 478→68 map (:func:`landmarks.mesh68.mesh_to_ibug68`), flips
y to image convention and expresses them in the face-normalised frame of
:mod:`video_gen.geometry` (eye-centre distance = 1), together with the model's
neutral face. The result is shipped as ``video_gen/data/au_basis68.npz`` (a few KB;
rebuild with ``python -m video_gen.prior``) so nothing depends on py-feat's files at
run time.

:func:`sample_sequence` turns an :class:`~video_gen.expressions.Expression` into a
looping displacement sequence ``[T+1,68,2]`` (face units; frame 0 and frame T are
both the neutral face, so the loop closes): each AU follows an onset → apex hold →
offset envelope with random timing, intensity and left/right asymmetry; blinks
are short AU 43 pulses; the head makes a small periodic roll / translation /
scale plus the expression's own gesture. These sequences train the motion model
(:mod:`video_gen.train_motion`) and serve as its reference in the figures.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from video_gen.expressions import EXPRESSIONS, Expression
from video_gen.geometry import FaceFrame

log = logging.getLogger(__name__)

DATA_FILE = Path(__file__).resolve().parent / "data" / "au_basis68.npz"
PLS_NAME = "au_to_mesh_pls_v4.npz"
SIDE_WIDTH = 0.08  # face units over which the left/right split fades across the midline
# The PLS fit is noisy at the ends of the face oval (by the ears, where the mesh's oval is least
# stable): e.g. AU 9 would move jaw point 16 by 0.3 eye distances. Those points are damped,
# ramping from 0.15 at the ears to 1 below the cheeks.
JAW_DAMPING = np.ones(68)
JAW_DAMPING[[0, 16]] = 0.15
JAW_DAMPING[[1, 15]] = 0.3
JAW_DAMPING[[2, 14]] = 0.5
JAW_DAMPING[[3, 13]] = 0.75
JAW_DAMPING[[4, 12]] = 0.9


@dataclass(frozen=True)
class AUBasis:
    """``neutral [68,2]`` and ``basis [A,68,2]`` (per unit AU) in face units; ``right [68]`` in [0,1] is how
    much each point belongs to the subject's right half (1 - right = left)."""

    aus: tuple[str, ...]
    neutral: np.ndarray
    basis: np.ndarray
    right: np.ndarray

    def index(self, au: str) -> int:
        if au not in self.aus:
            raise KeyError(f"AU {au!r} is not in the prior (has {', '.join(self.aus)})")
        return self.aus.index(au)


def _pls_path() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("feat")  # located, not imported: importing py-feat pulls in heavy extras
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"py-feat is not installed; it provides resources/{PLS_NAME} (run `make setup`)")
    return Path(next(iter(spec.submodule_search_locations))) / "resources" / PLS_NAME


def build_basis(npz_path: str | Path | None = None) -> AUBasis:
    """Derive the 68-point AU basis from py-feat's AU→mesh PLS model (``npz_path``; default: the installed one)."""
    from landmarks.mesh68 import mesh_to_ibug68

    path = Path(npz_path) if npz_path else _pls_path()
    with np.load(path, allow_pickle=False) as z:
        coef = z["coef"].astype(np.float64)  # [23, 1434]: 20 AUs then pitch/yaw/roll; axis-major x|y|z
        intercept = z["intercept"].astype(np.float64)
        aus = tuple(str(a) for a in z["au_columns"])

    def mesh(flat):  # [..., 1434] → [..., 478, 3], then image convention (y down)
        m = np.stack([flat[..., :478], flat[..., 478:956], flat[..., 956:]], -1)
        return m * np.array([1.0, -1.0, 1.0])

    neutral_px = mesh_to_ibug68(mesh(intercept))[:, :2]
    frame = FaceFrame.from_points(neutral_px)
    neutral = frame.to_unit(neutral_px)
    basis = frame.vectors_to_unit(mesh_to_ibug68(mesh(coef[: len(aus)]))[..., :2])
    basis = basis * JAW_DAMPING[None, :, None]
    right = 1.0 / (1.0 + np.exp(neutral[:, 0] / SIDE_WIDTH))  # subject's right = image left = x < 0
    return AUBasis(aus, neutral.astype(np.float32), basis.astype(np.float32), right.astype(np.float32))


def save_basis(basis: AUBasis, path: Path = DATA_FILE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, aus=np.array(basis.aus), neutral=basis.neutral, basis=basis.basis, right=basis.right,
             source=np.array(f"py-feat 2.1.5 feat/resources/{PLS_NAME} (MIT) via landmarks.mesh68.mesh_to_ibug68"))
    return path


@functools.lru_cache(maxsize=1)
def load_basis(path: str | None = None) -> AUBasis:
    """The shipped basis (``video_gen/data/au_basis68.npz``); built from py-feat when the file is absent."""
    p = Path(path) if path else DATA_FILE
    if not p.exists():
        log.info("%s missing; building the AU basis from py-feat", p)
        return build_basis()
    with np.load(p, allow_pickle=False) as z:
        return AUBasis(tuple(str(a) for a in z["aus"]), z["neutral"], z["basis"], z["right"])


# -- sequences ---------------------------------------------------------------------------------------------------------
def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def envelope(t: np.ndarray, *, start: float, onset: float, hold: float, offset: float) -> np.ndarray:
    """0 → 1 → 0 ease-in-out curve over phases ``t [T]`` in [0,1]."""
    up = _smoothstep((t - start) / max(onset, 1e-6))
    down = 1 - _smoothstep((t - start - onset - hold) / max(offset, 1e-6))
    return up * down


def head_transform(points: np.ndarray, *, roll: np.ndarray, dx: np.ndarray, dy: np.ndarray, scale: np.ndarray,
                   centre: np.ndarray) -> np.ndarray:
    """Apply per-frame similarity (``roll`` degrees, shifts in face units) to ``points [T,68,2]``."""
    th = np.deg2rad(roll)[:, None]
    c, s = np.cos(th), np.sin(th)
    q = points - centre
    x = scale[:, None] * (c * q[..., 0] - s * q[..., 1]) + centre[0] + dx[:, None]
    y = scale[:, None] * (s * q[..., 0] + c * q[..., 1]) + centre[1] + dy[:, None]
    return np.stack([x, y], -1)


def _periodic_wobble(t: np.ndarray, rng: np.random.Generator, amp: float, n: int = 2) -> np.ndarray:
    """Sum of ``n`` sinusoids with whole cycles per loop, zero at t = 0 and t = 1."""
    out = np.zeros_like(t)
    for _ in range(n):
        f = rng.integers(1, 3)
        phi = rng.uniform(0, 2 * np.pi)
        out += rng.uniform(0.3, 1.0) * amp * (np.sin(2 * np.pi * f * t + phi) - np.sin(phi))
    return out / n


def sample_content(rng: np.random.Generator, *, basis: AUBasis | None = None, spread: float = 1.0) -> np.ndarray:
    """A plausible neutral face ``[68,2]`` in face units: the prior's mean face with random proportions."""
    b = basis or load_basis()
    p = b.neutral.astype(np.float64).copy()
    c = p[27:36].mean(0)
    p = c + (p - c) * [1 + spread * rng.normal(0, 0.04), 1 + spread * rng.normal(0, 0.05)]
    mouth = slice(48, 68)
    mc = p[mouth].mean(0)
    p[mouth] = mc + (p[mouth] - mc) * [1 + spread * rng.normal(0, 0.06), 1 + spread * rng.normal(0, 0.08)]
    jaw = slice(0, 17)
    p[jaw, 0] = c[0] + (p[jaw, 0] - c[0]) * (1 + spread * rng.normal(0, 0.04))
    p += spread * rng.normal(0, 0.006, p.shape)
    p = FaceFrame.from_points(p).to_unit(p)
    return p.astype(np.float32)


def sample_sequence(expression: str | Expression, *, frames: int = 16, intensity: float = 1.0,
                    rng: np.random.Generator | int | None = None, content: np.ndarray | None = None,
                    basis: AUBasis | None = None, head_motion: float = 1.0,
                    asymmetry: float | None = None) -> np.ndarray:
    """One looping take of ``expression`` → displacements ``float32 [frames+1,68,2]`` in face units.

    Row ``k`` is the phase ``k / frames`` of the loop; rows 0 and ``frames`` are both the
    neutral face (zero displacement), so playing rows ``0..frames-1`` repeatedly loops seamlessly.
    ``content``: the neutral face ``[68,2]`` (face units) the head motion turns about; default the
    prior's mean face. ``intensity`` in [0,1] scales the expression (not blinks or idle head motion).
    ``asymmetry`` in [-0.3, 0.3]: how much stronger the expression is on the subject's right half (iBUG
    36-41, image left) than on the left, e.g. 0.2 = right x1.2, left x0.8; None draws it at random.
    """
    e = EXPRESSIONS[expression] if isinstance(expression, str) else expression
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    b = basis or load_basis()
    face = (b.neutral if content is None else np.asarray(content)).astype(np.float64)
    t = np.linspace(0.0, 1.0, frames + 1)
    n_au = len(b.aus)
    right = np.zeros((frames + 1, n_au))  # per-frame AU activation on each half of the face
    left = np.zeros((frames + 1, n_au))

    onset = rng.uniform(0.12, 0.28)
    offset = rng.uniform(0.12, 0.28)
    start = rng.uniform(0.03, 0.12)
    hold = rng.uniform(0.25, 0.97 - start - onset - offset - 0.02) if not e.idle else 0.0
    hold = max(hold, 0.05)
    env = envelope(t, start=start, onset=onset, hold=hold, offset=offset) if not e.idle else np.zeros_like(t)
    level = float(np.clip(intensity, 0.0, 1.0))
    asym = float(np.clip(rng.normal(0, 0.12), -0.3, 0.3))  # drawn even when given, so a seed's other draws stay
    if asymmetry is not None:
        asym = float(np.clip(asymmetry, -0.3, 0.3))

    def add(aus: dict[str, float], sides: str, weight: float):
        for au, apex in aus.items():
            shift = rng.uniform(-0.03, 0.03)
            curve = envelope(t, start=start + shift, onset=onset, hold=hold, offset=offset) if shift else env
            amp = apex * level * rng.uniform(0.85, 1.15) * weight
            k = b.index(au)
            if sides in ("both", "right"):
                right[:, k] += amp * curve * ((1 + asym) if sides == "both" else 1.0)
            if sides in ("both", "left"):
                left[:, k] += amp * curve * ((1 - asym) if sides == "both" else 1.0)

    if not e.idle:
        add(e.aus, "both", 1.0)
        extra = {au: w for au, w in e.optional.items() if rng.random() < e.optional_p}
        add(extra, "both", 1.0)
        add(e.right, "right", 1.0)
        add(e.left, "left", 1.0)

    # Blinks: short AU 43 pulses on both eyes, away from the loop's ends.
    n_blinks = int(rng.integers(e.blinks[0], e.blinks[1] + 1))
    k43 = b.index("AU43")
    centres = []
    for _ in range(n_blinks):
        for _try in range(10):
            c = rng.uniform(0.15, 0.85)
            if all(abs(c - o) > 0.25 for o in centres):
                centres.append(c)
                break
    for c in centres:
        pulse = np.exp(-0.5 * ((t - c) / rng.uniform(0.035, 0.05)) ** 2)
        pulse -= pulse[0] * (1 - t) + pulse[-1] * t  # exactly zero at both ends
        right[:, k43] += 1.1 * pulse
        left[:, k43] += 1.1 * pulse

    w_r = b.right[None, :, None].astype(np.float64)
    disp = (np.einsum("ta,apd->tpd", right, b.basis) * w_r + np.einsum("ta,apd->tpd", left, b.basis) * (1 - w_r))
    moved = face[None] + disp

    # Head: a small idle wobble plus the expression's own gesture on the same envelope.
    g = e.head
    hm = head_motion * (1.6 if e.idle else 1.0)
    roll = _periodic_wobble(t, rng, 1.2 * hm) + g.get("roll", 0.0) * level * env * rng.uniform(0.6, 1.2)
    dx = _periodic_wobble(t, rng, 0.012 * hm) + g.get("dx", 0.0) * level * env
    dy = _periodic_wobble(t, rng, 0.012 * hm) + g.get("dy", 0.0) * level * env
    scale = 1.0 + _periodic_wobble(t, rng, 0.006 * hm) + (g.get("scale", 1.0) - 1.0) * level * env
    centre = face[27:36].mean(0) + [0.0, 0.4]
    moved = head_transform(moved, roll=roll, dx=dx, dy=dy, scale=scale, centre=centre)
    out = moved - face[None]
    out -= out[0] * (1 - t)[:, None, None] + out[-1] * t[:, None, None]  # exact closure against round-off
    return out.astype(np.float32)


def sample_dataset(n: int, *, frames: int = 16, rng: np.random.Generator | int | None = None,
                   names: list[str] | None = None, intensity_range: tuple[float, float] = (0.4, 1.0)):
    """``n`` prior sequences with balanced labels.

    Returns ``content [n,68,2]``, ``disp [n,frames+1,68,2]``, ``label [n]`` (index into ``names``),
    ``intensity [n]``; all float32 except ``label`` (int64).
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    names = names or list(EXPRESSIONS)
    b = load_basis()
    content = np.zeros((n, 68, 2), np.float32)
    disp = np.zeros((n, frames + 1, 68, 2), np.float32)
    label = np.arange(n) % len(names)
    rng.shuffle(label)
    inten = rng.uniform(*intensity_range, n).astype(np.float32)
    for i in range(n):
        content[i] = sample_content(rng, basis=b)
        disp[i] = sample_sequence(names[label[i]], frames=frames, intensity=float(inten[i]), rng=rng,
                                  content=content[i], basis=b)
    return content, disp, label.astype(np.int64), inten


def main() -> int:  # pragma: no cover - maintenance entry point
    logging.basicConfig(level=logging.INFO)
    path = save_basis(build_basis())
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
