"""emoget: one face photo in, an animated emoticon of that person out.

The Python API. The stages live in their own packages (``landmarks``,
``face2emoticon``, ``video_gen``); this module re-exports the one pipeline
that chains them::

    import emoget
    result = emoget.render("me.jpg", style="avataaars", expression="happy", output="me.gif")
"""
from __future__ import annotations

__version__ = "0.1.0"


def __getattr__(name):
    # Lazy: importing emoget must stay cheap and must not load torch.
    import ui.pipeline as _pipeline

    try:
        return getattr(_pipeline, name)
    except AttributeError:
        raise AttributeError(f"module 'emoget' has no attribute {name!r}") from None
