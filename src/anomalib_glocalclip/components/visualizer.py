"""The models' default visualizer: Anomalib's image visualizer with the "Image" panel read by the plugin's reader.

Anomalib's ``visualize_image_item`` re-reads each item's ``image_path`` with ``Image.open(path).convert("RGB")``,
which shows 16-bit and float images as (mostly) white. :class:`PluginImageVisualizer` hands it the file read by
:func:`~anomalib_glocalclip.data.io.read_image` instead; panels, overlays and output file names are Anomalib's.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from anomalib.utils.path import generate_output_filename
from anomalib.visualization import ImageVisualizer
from anomalib.visualization.image.item_visualizer import visualize_image_item
from PIL import Image

from anomalib_glocalclip.data.io import read_image

if TYPE_CHECKING:
    from anomalib.data import ImageBatch, ImageItem
    from anomalib.models import AnomalibModule
    from lightning.pytorch import Trainer


class _ItemWithImage:
    """An item whose ``image`` is a given picture and whose ``image_path`` is hidden from Anomalib's visualizer.

    ``visualize_image_item`` reads ``image`` only when ``image_path`` is ``None``; every other field is the item's.
    """

    image_path = None

    def __init__(self, item: ImageItem, image: Image.Image) -> None:
        self._item = item
        self.image = image

    def __getattr__(self, name: str) -> Any:
        return getattr(self._item, name)


def read_display_image(path: str | Path) -> Image.Image:
    """Read an image file for display as 8-bit RGB of its size, any mode or bit depth, as 8-bit files show in Anomalib.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ImageReadError: ``path`` cannot be read; the message names it.
    """
    image = read_image(path)  # [3, H, W] in [0, 1]
    rgb8 = image.mul(255.0).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
    return Image.fromarray(np.ascontiguousarray(rgb8), mode="RGB")


class PluginImageVisualizer(ImageVisualizer):
    """``ImageVisualizer`` whose "Image" panel (and overlay base) is read by the plugin's reader.

    Takes the same arguments as Anomalib's ``ImageVisualizer``; items without ``image_path`` are drawn from their
    ``image`` tensor, as there.
    """

    def visualize_item(self, item: ImageItem) -> Image.Image | None:
        """Draw one item's panels side by side (``None`` when there is nothing to draw)."""
        if item.image_path:
            item = _ItemWithImage(item, read_display_image(item.image_path))
        return visualize_image_item(
            item, fields=self.fields, overlay_fields=self.overlay_fields, field_size=self.field_size,
            fields_config=self.fields_config, overlay_fields_config=self.overlay_fields_config,
            text_config=self.text_config
        )

    def on_test_batch_end(
        self, trainer: Trainer, pl_module: AnomalibModule, outputs: ImageBatch, batch: ImageBatch, *args: Any
    ) -> None:
        """Save each item's panels under ``output_dir`` (default ``<trainer root>/images``), named as Anomalib does."""
        del pl_module, outputs, args
        if self.output_dir is None:
            self.output_dir = Path(trainer.default_root_dir) / "images"
        datamodule = getattr(trainer, "datamodule", None)
        name, category = getattr(datamodule, "name", None), getattr(datamodule, "category", None)
        save_pictures(self, batch, self.output_dir, name, category)


def save_pictures(
    visualizer: ImageVisualizer, batch: ImageBatch, output_dir: Path, dataset_name: str | None, category: str | None
) -> None:
    """Save ``visualizer.visualize_item`` of each item of ``batch``, under Anomalib's file names."""
    for item in batch:
        picture = visualizer.visualize_item(item)
        if picture is not None:
            picture.save(generate_output_filename(input_path=item.image_path or "", output_path=output_dir,
                                                  dataset_name=dataset_name, category=category))
