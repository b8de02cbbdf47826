"""The default styles emoget ships: one generator class per style.

Each entry names the npm package its training images are drawn from, the
package's version, and the art licence exactly as the package states it
(``meta.license`` of the DiceBear style, ``license`` of the icon set's
package.json). ``emoget styles`` lists this table; the shipped generator's
``class_names`` are :data:`STYLE_NAMES`, in this order, which is the sorted
order of the names (the order class folders are read in training).

Why these six: five human-like avatar styles whose options carry the
attributes a photo gives (skin tone, hair colour, hair length, glasses, beard)
and that span flat-vector (avataaars, personas), round cartoon (big-smile),
sketchy line-art (micah, open-peeps) looks, plus one emoji set (Twemoji person
emoji in their five skin tones). Every identity in the data is rendered in all
six, so the data holds true cross-style pairs.
"""
from __future__ import annotations

from dataclasses import dataclass

from landmarks.errors import EmogetError


@dataclass(frozen=True)
class Style:
    """One default style.

    ``source`` is the renderer's id: the DiceBear collection export name for
    ``kind == "dicebear"``, the icon set for ``kind == "emoji"``.
    """

    name: str
    title: str
    description: str
    kind: str  # "dicebear" | "emoji"
    source: str
    package: str  # npm package@version the art comes from
    licence: str  # as the package states it
    licence_url: str
    creator: str
    carries: tuple[str, ...]  # which identity attributes the style can show

    @property
    def attribution(self) -> str:
        return f"{self.title} by {self.creator}, {self.licence} ({self.licence_url}), via {self.package}"


_DICEBEAR = "@dicebear/collection@9.4.3"
_CC_BY = "https://creativecommons.org/licenses/by/4.0/"
_ALL = ("skin", "hair_colour", "hair_length", "glasses", "beard")

STYLES: tuple[Style, ...] = (
    Style("avataaars", "Avataaars", "flat vector cartoon with torso; the widest expression set",
          "dicebear", "avataaars", _DICEBEAR, "Free for personal and commercial use", "https://avataaars.com/",
          "Pablo Stanley", _ALL),
    Style("big-smile", "Custom Avatar (Big Smile)", "round cartoon heads, bold outlines",
          "dicebear", "bigSmile", _DICEBEAR, "CC BY 4.0", _CC_BY, "Ashley Seo", _ALL),
    Style("micah", "Avatar Illustration System (Micah)", "sketchy line art with flat colour",
          "dicebear", "micah", _DICEBEAR, "CC BY 4.0", _CC_BY, "Micah Lanier", _ALL),
    Style("open-peeps", "Open Peeps", "hand-drawn black line art on skin colour",
          "dicebear", "openPeeps", _DICEBEAR, "CC0 1.0", "https://creativecommons.org/publicdomain/zero/1.0/",
          "Pablo Stanley", ("skin", "hair_length", "glasses", "beard")),
    Style("personas", "Personas by Draftbit", "soft flat shapes, pastel clothing",
          "dicebear", "personas", _DICEBEAR, "CC BY 4.0", _CC_BY, "Draftbit - draftbit.com", _ALL),
    Style("twemoji", "Twemoji person emoji", "emoji people in the five Fitzpatrick skin tones",
          "emoji", "twemoji", "@iconify-json/twemoji@1.2.5", "CC-BY-4.0", _CC_BY,
          "Twitter, Inc and other contributors", ("skin", "hair_colour", "hair_length", "beard")),
)

STYLE_NAMES: tuple[str, ...] = tuple(s.name for s in STYLES)


def get_style(name: str) -> Style:
    """The style called ``name``; raises :class:`StyleNotFound` listing the known ones."""
    for s in STYLES:
        if s.name == name:
            return s
    raise StyleNotFound(f"no style named {name!r}; choose one of {', '.join(STYLE_NAMES)} (see `emoget styles`)")


def class_index(name: str) -> int:
    """Index of style ``name`` among :data:`STYLE_NAMES` (the shipped generator's class)."""
    return STYLE_NAMES.index(get_style(name).name)


class StyleNotFound(EmogetError):
    """The requested style is not one of the default styles."""
