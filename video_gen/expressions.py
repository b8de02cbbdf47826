"""The expression registry: what each expression is made of, as facial action units.

An :class:`Expression` names the action units (AUs, FACS) that make it, with their
apex intensity, following the standard EMFACS prototypes:

=========== =========================================================
happy       6 + 12 (+ 25)
sad         1 + 4 + 15 (+ 17)
surprised   1 + 2 + 5 + 26
fearful     1 + 2 + 4 + 5 + 7 + 20 + 26
angry       4 + 5 + 7 + 23 (+ 24)
disgusted   9 + 10 (+ 15 + 17)
wink        46 on one side (closing one eye: AU 43 on that side in the prior's AU space)
neutral     idle: blinks (AU 45, i.e. a short AU 43) and a little head motion
=========== =========================================================

Optional AUs (in brackets) are drawn per training sequence with ``optional_p``.
``head`` is the expression's own head gesture at the apex (in face units and
degrees): a roll, a translation ``(dx, dy)`` and a scale. Adding an expression is
one entry in :data:`EXPRESSIONS`; the motion model must then be retrained
(``emoget train-motion``) for the generator to know it, while the prior
(:func:`video_gen.prior.sample_sequence`) can render it at once.

Apex weights above 1 exaggerate beyond the population model's typical unit
intensity; emoticons read better slightly overdone.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Expression:
    """One expression.

    ``aus``: AU name (e.g. ``"AU12"``) → apex intensity (both sides).
    ``optional``: AUs added with probability ``optional_p`` per training sequence.
    ``right`` / ``left``: AUs on one side only (the subject's right = iBUG 36-41, image left).
    ``blinks``: range of blinks per loop; ``head``: apex gesture ``dict(roll=deg, dx=, dy=, scale=)``.
    """

    name: str
    description: str
    aus: dict[str, float] = field(default_factory=dict)
    optional: dict[str, float] = field(default_factory=dict)
    optional_p: float = 0.5
    right: dict[str, float] = field(default_factory=dict)
    left: dict[str, float] = field(default_factory=dict)
    blinks: tuple[int, int] = (0, 1)
    head: dict[str, float] = field(default_factory=dict)
    idle: bool = False  # no onset/apex/offset: blinks and head motion only


EXPRESSIONS: dict[str, Expression] = {
    e.name: e
    for e in [
        Expression("neutral", "idle: a blink or two and a little head motion", blinks=(1, 2), idle=True),
        Expression("happy", "a broad smile: cheeks raised, lip corners pulled up",
                   aus={"AU06": 1.3, "AU12": 1.6}, optional={"AU25": 0.8, "AU26": 0.3}, optional_p=0.5,
                   head={"roll": 2.0, "dy": -0.02}),
        Expression("sad", "inner brows raised and knitted, lip corners down",
                   aus={"AU01": 2.0, "AU04": 1.4, "AU15": 2.5}, optional={"AU17": 0.8},
                   head={"roll": -2.0, "dy": 0.05, "scale": 0.98}),
        Expression("angry", "brows lowered and drawn together, eyes narrowed, lips pressed",
                   aus={"AU04": 2.2, "AU05": 0.5, "AU07": 1.4, "AU23": 1.4}, optional={"AU24": 0.8},
                   head={"dy": 0.02, "scale": 1.03}),
        Expression("surprised", "brows up, eyes wide, jaw dropped",
                   aus={"AU01": 1.3, "AU02": 1.3, "AU05": 1.3, "AU26": 1.4}, blinks=(0, 0),
                   head={"dy": -0.04, "scale": 1.01}),
        Expression("fearful", "brows up and knitted, eyes wide, lips stretched, jaw open",
                   aus={"AU01": 1.2, "AU02": 0.9, "AU04": 0.9, "AU05": 1.3, "AU07": 0.6, "AU20": 1.4, "AU26": 0.9},
                   blinks=(0, 0), head={"dy": -0.03, "scale": 0.97, "roll": -1.5}),
        Expression("disgusted", "nose wrinkled, upper lip raised",
                   aus={"AU09": 1.3, "AU10": 1.6}, optional={"AU15": 0.8, "AU17": 0.6},
                   head={"roll": -3.0, "dx": 0.03, "dy": 0.01}),
        Expression("wink", "one eye closes (the subject's left, on the image's right) with a half smile",
                   left={"AU43": 1.15, "AU06": 0.8, "AU12": 0.9}, blinks=(0, 0), head={"roll": 3.0}),
    ]
}


def list_expressions() -> list[tuple[str, str]]:
    """``[(name, description), ...]`` in registry order."""
    return [(e.name, e.description) for e in EXPRESSIONS.values()]


def get_expression(name: str) -> Expression:
    from landmarks.errors import EmogetError

    if name not in EXPRESSIONS:
        raise EmogetError(f"unknown expression {name!r}; choose one of {', '.join(EXPRESSIONS)}")
    return EXPRESSIONS[name]
