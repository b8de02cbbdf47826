import pytest

from face2emoticon.styles import (
    STYLE_NAMES,
    STYLES,
    StyleNotFound,
    class_index,
    get_style,
)
from landmarks.errors import EmogetError


def test_registry_names_are_unique_and_ordered():
    assert len(set(STYLE_NAMES)) == len(STYLE_NAMES) == len(STYLES)
    assert 4 <= len(STYLES) <= 8
    assert [class_index(n) for n in STYLE_NAMES] == list(range(len(STYLES)))


def test_every_style_records_package_version_and_licence():
    for s in STYLES:
        assert "@" in s.package.lstrip("@"), s.package  # name@version
        assert s.licence and s.licence_url.startswith("https://")
        assert s.kind in ("dicebear", "emoji")
        assert s.name in s.attribution or s.title in s.attribution


def test_span_human_like_and_emoji():
    kinds = {s.kind for s in STYLES}
    assert kinds == {"dicebear", "emoji"}
    full = [s for s in STYLES if {"skin", "hair_colour", "hair_length", "glasses", "beard"} <= set(s.carries)]
    assert len(full) >= 3


def test_unknown_style_says_what_to_do():
    with pytest.raises(StyleNotFound, match="emoget styles") as info:
        get_style("vaporwave")
    assert isinstance(info.value, EmogetError)


def test_names_are_sorted_like_training_class_folders():
    assert list(STYLE_NAMES) == sorted(STYLE_NAMES)
