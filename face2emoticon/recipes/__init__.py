"""Training recipes for the weights emoget ships (see ``default.py``)."""
