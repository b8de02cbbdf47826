"""Per-style render options for an identity and an expression.

``render_job(style, identity, expression)`` returns the renderer's job (a
DiceBear style with explicit options, or a Twemoji icon name). Every free
choice (which haircut among the short ones, clothing colour) comes from a
generator seeded by the identity's seed and the style, so the same identity
keeps its haircut and clothes across expressions; only the face parts change.
"""
from __future__ import annotations

import zlib

import numpy as np

from face2emoticon.styledata.people import EMOJI_TONES, EXPRESSIONS, Identity
from face2emoticon.styles import Style, get_style

BACKGROUND = "f2f2f2"
_CLOTHES = ("262e33", "5199e4", "25557c", "929598", "a7ffc4", "ffafb9", "ff5c5c", "ffffb1", "65c9ff")


def _rng(identity: Identity, style: str) -> np.random.Generator:
    return np.random.default_rng([identity.seed, zlib.crc32(style.encode())])


def _pick(rng: np.random.Generator, options) -> str:
    return options[int(rng.integers(0, len(options)))]


def _avataaars(p: Identity, expr: str, rng: np.random.Generator) -> dict:
    short = ("shortFlat", "shortRound", "shortWaved", "shortCurly", "theCaesar", "theCaesarAndSidePart", "sides",
             "frizzle", "shaggy", "dreads01")
    long_ = ("bob", "bun", "curly", "curvy", "longButNotTooLong", "straight01", "straight02", "straightAndStrand",
             "bigHair", "miaWallace", "fro")
    top = _pick(rng, short if p.hair_length == "short" else long_)
    faces = {
        "neutral": ("default", "defaultNatural", "default"),
        "happy": ("happy", "raisedExcitedNatural", "smile"),
        "sad": ("cry", "sadConcernedNatural", "sad"),
        "angry": ("squint", "angryNatural", "serious"),
        "surprised": ("surprised", "raisedExcitedNatural", "screamOpen"),
        "fearful": ("surprised", "sadConcernedNatural", "grimace"),
        "disgusted": ("squint", "frownNatural", "disbelief"),
    }
    eyes, brows, mouth = faces[expr]
    return {
        "skinColor": [p.skin_hex], "hairColor": [p.hair_hex], "facialHairColor": [p.hair_hex],
        "top": [top], "topProbability": 0 if p.hair_length == "bald" else 100,
        "facialHair": [_pick(rng, ("beardLight", "beardMedium", "beardMajestic"))],
        "facialHairProbability": 100 if p.beard else 0,
        "accessories": [_pick(rng, ("prescription01", "prescription02", "round"))],
        "accessoriesColor": ["262e33"], "accessoriesProbability": 100 if p.glasses else 0,
        "clothing": [_pick(rng, ("blazerAndShirt", "blazerAndSweater", "collarAndSweater", "hoodie", "overall",
                                 "shirtCrewNeck", "shirtScoopNeck", "shirtVNeck"))],
        "clothesColor": [_pick(rng, _CLOTHES)],
        "eyes": [eyes], "eyebrows": [brows], "mouth": [mouth],
    }


def _big_smile(p: Identity, expr: str, rng: np.random.Generator) -> dict:
    hair = {"short": ("shortHair", "bowlCutHair", "curlyShortHair", "mohawk", "halfShavedHead"),
            "long": ("wavyBob", "curlyBob", "straightHair", "braids", "bunHair", "froBun", "bangs"),
            "bald": ("shavedHead",)}[p.hair_length]
    faces = {"neutral": ("normal", "unimpressed"), "happy": ("cheery", "openedSmile"), "sad": ("sad", "openSad"),
             "angry": ("angry", "unimpressed"), "surprised": ("normal", "gapSmile"),
             "fearful": ("confused", "openSad"), "disgusted": ("sleepy", "unimpressed")}
    eyes, mouth = faces[expr]
    # One accessory slot: glasses win over the moustache when a person has both.
    acc = "glasses" if p.glasses else "mustache"
    return {
        "skinColor": [p.skin_hex], "hairColor": [p.hair_hex], "hair": [_pick(rng, hair)],
        "accessories": [acc], "accessoriesProbability": 100 if (p.glasses or p.beard) else 0,
        "eyes": [eyes], "mouth": [mouth],
    }


def _micah(p: Identity, expr: str, rng: np.random.Generator) -> dict:
    hair = {"short": ("fonze", "mrT", "dougFunny", "dannyPhantom"), "long": ("full", "pixie"),
            "bald": ("mrClean",)}[p.hair_length]
    faces = {"neutral": ("smirk", "eyes", "up"), "happy": ("laughing", "smiling", "up"), "sad": ("sad", "eyes", "down"),
             "angry": ("frown", "eyes", "down"), "surprised": ("surprised", "round", "up"),
             "fearful": ("nervous", "round", "up"), "disgusted": ("pucker", "eyesShadow", "down")}
    mouth, eyes, brows = faces[expr]
    return {
        "baseColor": [p.skin_hex], "hairColor": [p.hair_hex], "hair": [_pick(rng, hair)], "hairProbability": 100,
        "facialHair": [_pick(rng, ("beard", "scruff"))], "facialHairColor": [p.hair_hex],
        "facialHairProbability": 100 if p.beard else 0,
        "glasses": [_pick(rng, ("round", "square"))], "glassesColor": ["000000"],
        "glassesProbability": 100 if p.glasses else 0,
        "earringsProbability": 0, "shirtColor": [_pick(rng, _CLOTHES)],
        "mouth": [mouth], "eyes": [eyes], "eyebrows": [brows],
    }


def _personas(p: Identity, expr: str, rng: np.random.Generator) -> dict:
    hair = {"short": ("shortCombover", "buzzcut", "fade", "curlyHighTop", "sideShave", "shortComboverChops"),
            "long": ("long", "bobCut", "curly", "pigtails", "curlyBun", "bobBangs", "straightBun", "extraLong"),
            "bald": ("bald", "balding")}[p.hair_length]
    faces = {"neutral": ("open", "lips"), "happy": ("happy", "bigSmile"), "sad": ("sleep", "frown"),
             "angry": ("open", "frown"), "surprised": ("open", "surprise"), "fearful": ("wink", "surprise"),
             "disgusted": ("open", "smirk")}
    eyes, mouth = faces[expr]
    return {
        "skinColor": [p.skin_hex], "hairColor": [p.hair_hex], "hair": [_pick(rng, hair)],
        "facialHair": [_pick(rng, ("beardMustache", "goatee", "shadow", "walrus"))],
        "facialHairProbability": 100 if p.beard else 0,
        # The style draws glasses as an eye variant, so a person with glasses keeps them in every expression.
        "eyes": ["glasses" if p.glasses else eyes], "mouth": [mouth],
        "body": [_pick(rng, ("squared", "rounded", "small"))], "clothingColor": [_pick(rng, _CLOTHES)],
    }


def _open_peeps(p: Identity, expr: str, rng: np.random.Generator) -> dict:
    head = {"short": ("short1", "short2", "short3", "short4", "short5", "flatTop", "pomp"),
            "long": ("long", "longCurly", "longBangs", "mediumStraight", "medium1", "medium2", "bangs", "bun"),
            "bald": ("noHair1", "noHair2")}[p.hair_length]
    faces = {"neutral": "calm", "happy": "smileBig", "sad": "concerned", "angry": "rage", "surprised": "awe",
             "fearful": "fear", "disgusted": "contempt"}
    return {
        "skinColor": [p.skin_hex], "headContrastColor": [p.hair_hex], "head": [_pick(rng, head)],
        "accessories": [_pick(rng, ("glasses", "glasses2", "glasses3", "glasses4"))],
        "accessoriesProbability": 100 if p.glasses else 0,
        "facialHair": [_pick(rng, ("full", "full2", "full3", "chin"))], "facialHairProbability": 100 if p.beard else 0,
        "maskProbability": 0, "clothingColor": [_pick(rng, _CLOTHES)], "face": [faces[expr]],
    }


def twemoji_name(p: Identity) -> str:
    """The Twemoji person icon for an identity: skin tone, and beard > bald > hair colour."""
    tone = f"{EMOJI_TONES[p.skin]}-skin-tone"
    base = "woman" if p.hair_length == "long" else "man"
    if p.beard:
        return f"{base}-{tone}-beard"
    if p.hair_length == "bald":
        return f"{base}-{tone}-bald"
    suffix = {"blond": "-blond-hair", "red": "-red-hair", "grey": "-white-hair", "auburn": "-red-hair"}.get(
        p.hair_colour, "")
    return f"{base}-{tone}{suffix}"


# Face emoji for the emoji style's expressions (Twemoji has no person emoji with expressions).
EMOJI_FACES: dict[str, str] = {
    "neutral": "neutral-face", "happy": "grinning-face-with-smiling-eyes", "sad": "crying-face",
    "angry": "angry-face", "surprised": "astonished-face", "fearful": "fearful-face", "disgusted": "nauseated-face",
}

_DICEBEAR_OPTIONS = {"avataaars": _avataaars, "big-smile": _big_smile, "micah": _micah, "personas": _personas,
                     "open-peeps": _open_peeps}


def render_job(style: Style | str, identity: Identity, expression: str = "neutral") -> dict:
    """The renderer job (without ``out``/``size``) drawing ``identity`` in ``style`` with ``expression``.

    DiceBear: ``{"style": <export name>, "options": {...}}``; emoji: ``{"emoji": <icon name>, "background": hex}``.
    The emoji style draws the person icon for ``neutral`` and a face emoji for other expressions.
    """
    style = get_style(style) if isinstance(style, str) else style
    if expression not in EXPRESSIONS:
        raise ValueError(f"unknown expression {expression!r}; choose one of {', '.join(EXPRESSIONS)}")
    if style.kind == "emoji":
        name = twemoji_name(identity) if expression == "neutral" else EMOJI_FACES[expression]
        return {"emoji": name, "background": BACKGROUND}
    opts = _DICEBEAR_OPTIONS[style.name](identity, expression, _rng(identity, style.name))
    opts = {"seed": str(identity.seed), "backgroundColor": [BACKGROUND], **opts}
    return {"style": style.source, "options": opts}
