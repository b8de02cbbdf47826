"""Identities: one attribute set rendered in every style.

An :class:`Identity` is what a photo can tell about a person and every default
style can show: skin tone, hair colour, hair length, glasses, beard. The data
generator samples identities once and renders each in all styles with matching
options, so the data holds true cross-style pairs (same ``identity_id``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

# Five skin tones, light to dark, one per Fitzpatrick emoji modifier (1-2, 3, 4, 5, 6).
SKIN_TONES: tuple[str, ...] = ("ffdbb4", "edb98a", "d08b5b", "ae5d29", "614335")
EMOJI_TONES: tuple[str, ...] = ("light", "medium-light", "medium", "medium-dark", "dark")

HAIR_COLOURS: dict[str, str] = {
    "black": "2c1b18",
    "dark-brown": "4a312c",
    "brown": "724133",
    "auburn": "a55728",
    "blond": "d6b370",
    "red": "c93305",
    "grey": "e8e1e1",
}
_HAIR_P = (0.24, 0.2, 0.16, 0.1, 0.15, 0.07, 0.08)
HAIR_LENGTHS: tuple[str, ...] = ("short", "long", "bald")
_LENGTH_P = (0.46, 0.44, 0.10)

EXPRESSIONS: tuple[str, ...] = ("neutral", "happy", "sad", "angry", "surprised", "fearful", "disgusted")


@dataclass(frozen=True)
class Identity:
    """One person's style-independent attributes.

    ``seed`` drives every style-specific free choice (which short haircut,
    clothing colour), so re-rendering an identity is deterministic.
    """

    identity_id: int
    seed: int
    skin: int  # index into SKIN_TONES, 0 = lightest
    hair_colour: str  # key of HAIR_COLOURS
    hair_length: str  # one of HAIR_LENGTHS
    glasses: bool
    beard: bool

    @property
    def skin_hex(self) -> str:
        return SKIN_TONES[self.skin]

    @property
    def hair_hex(self) -> str:
        return HAIR_COLOURS[self.hair_colour]

    def to_json(self) -> dict:
        return asdict(self)


def sample_identities(count: int, *, seed: int) -> list[Identity]:
    """``count`` identities drawn from a ``numpy`` generator seeded with ``seed``.

    Beards are drawn for short/bald hair mostly (p=0.35) and rarely for long
    hair (p=0.08); glasses with p=0.25.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    rng = np.random.default_rng(seed)
    hair_names = list(HAIR_COLOURS)
    out = []
    for i in range(count):
        length = HAIR_LENGTHS[rng.choice(len(HAIR_LENGTHS), p=_LENGTH_P)]
        out.append(Identity(
            identity_id=i,
            seed=int(rng.integers(0, 2**31 - 1)),
            skin=int(rng.integers(0, len(SKIN_TONES))),
            hair_colour=hair_names[rng.choice(len(hair_names), p=_HAIR_P)],
            hair_length=length,
            glasses=bool(rng.random() < 0.25),
            beard=bool(rng.random() < (0.08 if length == "long" else 0.35)),
        ))
    return out
