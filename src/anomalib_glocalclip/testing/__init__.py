"""Test kit: a tiny random CLIP and generators of small datasets in the layouts Anomalib and the papers use.

Used by the test suite and by the offline demo; nothing here touches the network.
"""

from pathlib import Path

TINY_CLIP_CONFIG = Path(__file__).parent / "configs" / "tiny-clip.json"
"""open_clip model config of a 24-layer, 64-wide random ViT (64 px, 8 px patches) with a 12-layer text tower."""

__all__ = ["TINY_CLIP_CONFIG"]
