"""Shared procedural data: drawing layer (``shapes``) used by the image, vfx and diffscaler plugins."""
