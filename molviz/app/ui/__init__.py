"""Panels (widget classes taking state-key names) and the page layout that composes them."""
