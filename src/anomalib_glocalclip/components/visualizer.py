"""The models' default visualizer: Anomalib's image visualizer with the "Image" panel read by the plugin's reader.

Anomalib's ``visualize_image_item`` re-reads each item's ``image_path`` with ``Image.open(path).convert("RGB")``,
which shows 16-bit and float images as (mostly) white. :class:`PluginImageVisualizer` hands Anomalib's public
``visualize`` a copy of the item holding the file read by :func:`~anomalib_glocalclip.data.io.read_image` instead,
and overrides the public ``on_test_batch_end`` hook (Anomalib's calls the drawing function directly) to save those
pictures; panels, overlays and output file names are Anomalib's.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from anomalib.utils.path import generate_output_filename
from anomalib.visualization import ImageVisualizer
from PIL import Image
from torchvision.transforms.v2.functional import pil_to_tensor

from anomalib_glocalclip.data.io import read_image

if TYPE_CHECKING:
    from anomalib.data import ImageBatch, ImageItem
    from anomalib.models import AnomalibModule
    from lightning.pytorch import Trainer


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
        if item.image_path:  # Anomalib's visualize draws the item's image when it has no path
            image = pil_to_tensor(read_display_image(item.image_path))
            item = item.update(in_place=False, image=image, image_path=None)
        return self.visualize(item)

    def on_test_batch_end(
        self, trainer: Trainer, pl_module: AnomalibModule, outputs: ImageBatch, batch: ImageBatch, batch_idx: int,
        dataloader_idx: int = 0
    ) -> None:
        """Save :meth:`visualize_item` of each item under ``output_dir`` (default ``<trainer root>/images``).

        Anomalib's hook draws with its reader; the folder and file names are Anomalib's.
        """
        del pl_module, outputs, batch_idx, dataloader_idx
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
