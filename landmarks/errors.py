"""Errors shared by every stage.

Each error says what was wrong and what to do about it; the CLI prints it as
one line and the page shows it as a friendly message.
"""
from __future__ import annotations


class EmogetError(Exception):
    """Base of every error emoget raises on purpose (bad input, missing weights...)."""


class ImageError(EmogetError, ValueError):
    """The file is not an image we can read (corrupt, truncated, too large, a video...)."""


class NoFaceFound(EmogetError):
    """No face was detected in the image."""


class FaceTooSmall(EmogetError):
    """A face was found but is too small to animate well."""


class WeightsError(EmogetError):
    """A weight file is missing, corrupt, of the wrong kind, or unsafe to load."""
