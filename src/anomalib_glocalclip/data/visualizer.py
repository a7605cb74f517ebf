"""Moved to :mod:`anomalib_glocalclip.components.visualizer` (the models' default visualizer); re-exported here."""

from anomalib_glocalclip.components.visualizer import PluginImageVisualizer, read_display_image

__all__ = ["PluginImageVisualizer", "read_display_image"]
