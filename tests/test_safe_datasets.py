"""The plugin's datasets read every file with the plugin's reader and give Anomalib's items; the plugin's visualizer.

``SampleDataset`` (behind ``LayoutDataModule`` and the catalogue's datamodules) builds its items from the public
``samples`` table and ``augmentations``; on 8-bit RGB files they equal the items of Anomalib's own datasets bit for
bit. ``predict`` on a folder keeps Anomalib's ``PredictDataset`` and leaves unreadable files out of its public file
list before the loop starts.
"""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from anomalib.data import Folder, MVTecAD
from anomalib.data.dataclasses import ImageBatch, ImageItem
from anomalib.utils.path import generate_output_filename
from anomalib.visualization import ImageVisualizer
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.transforms.v2 import Compose, RandomHorizontalFlip, Resize

from anomalib_glocalclip.components.visualizer import PluginImageVisualizer, read_display_image
from anomalib_glocalclip.data import LayoutDataModule
from anomalib_glocalclip.data.dataset import SampleDataset
from anomalib_glocalclip.data.io import ImageReadError
from image_files import gray16_as_8_bit, save, write_folder_set, write_mvtec_set

_AUGMENTATIONS = Compose([Resize((48, 40)), RandomHorizontalFlip(p=1.0)])


def _assert_batches_equal(ours: ImageBatch, theirs: ImageBatch) -> None:
    assert type(ours) is type(theirs)
    assert torch.equal(ours.image.as_subclass(torch.Tensor), theirs.image.as_subclass(torch.Tensor))
    assert type(ours.image) is type(theirs.image)
    for field in ("gt_mask", "gt_label"):
        mine, reference = getattr(ours, field), getattr(theirs, field)
        assert (mine is None) == (reference is None), field
        if reference is not None:
            assert type(mine) is type(reference), field
            assert mine.dtype == reference.dtype, field
            assert torch.equal(mine.as_subclass(torch.Tensor), reference.as_subclass(torch.Tensor)), field
    assert list(ours.image_path) == list(theirs.image_path)
    assert ours.mask_path == theirs.mask_path


def _one_batch(dataset: object) -> ImageBatch:
    return next(iter(DataLoader(dataset, batch_size=16, collate_fn=dataset.collate_fn)))


@pytest.mark.parametrize("augmentations", [None, _AUGMENTATIONS])
def test_mvtec_layout_items_equal_anomalibs_bit_for_bit(tmp_path: Path, augmentations: Compose | None) -> None:
    """The sweep's MVTec AD datamodule gives Anomalib's MVTecAD items: same samples, order, splits and pixels."""
    root = write_mvtec_set(tmp_path)
    reference = MVTecAD(root=root, category="bottle", num_workers=0, augmentations=augmentations)
    ours = LayoutDataModule(root=str(root), category="bottle", layout="mvtec_ad", num_workers=0,
                            augmentations=augmentations)
    for datamodule in (reference, ours):
        datamodule.setup()
    assert isinstance(ours.test_data, SampleDataset)
    assert len(ours.test_data) == len(reference.test_data) == 4
    assert ours.test_data.task == reference.test_data.task
    assert list(ours.val_data.samples.image_path) == list(reference.val_data.samples.image_path)
    _assert_batches_equal(_one_batch(ours.test_data), _one_batch(reference.test_data))
    _assert_batches_equal(next(iter(ours.test_dataloader())), next(iter(reference.test_dataloader())))


@pytest.mark.parametrize("with_masks", [True, False])
def test_items_over_anomalibs_samples_equal_anomalibs_bit_for_bit(tmp_path: Path, with_masks: bool) -> None:
    """``SampleDataset`` over the samples table of Anomalib's ``Folder`` builds the very items Anomalib builds."""
    root = write_folder_set(tmp_path)
    datamodule = Folder(
        name="parts",
        root=root,
        normal_dir="good",
        abnormal_dir="bad",
        mask_dir="masks" if with_masks else None,
        num_workers=0,
        augmentations=_AUGMENTATIONS,
    )
    datamodule.setup()
    reference = datamodule.test_data
    ours = SampleDataset(reference.samples, augmentations=reference.augmentations)
    assert ours.task == reference.task == ("segmentation" if with_masks else "classification")
    _assert_batches_equal(_one_batch(ours), _one_batch(reference))


def test_subsample_keeps_the_plugins_reader(tmp_path: Path) -> None:
    datamodule = LayoutDataModule(root=str(write_mvtec_set(tmp_path)), category="bottle", layout="mvtec_ad")
    datamodule.setup()
    subset = datamodule.test_data.subsample([1, 3])
    assert isinstance(subset, SampleDataset)
    assert list(subset.samples.image_path) == list(datamodule.test_data.samples.image_path.iloc[[1, 3]])


def _gradient16() -> np.ndarray:
    ramp = np.linspace(0, 65535, 64, dtype=np.float64)
    return np.round((ramp[None, :] + ramp[:, None]) / 2).astype(np.uint16)


def test_visualizer_shows_16_bit_images_like_their_8_bit_version(tmp_path: Path) -> None:
    gray16 = _gradient16()
    deep = save(tmp_path / "deep.png", Image.fromarray(gray16))
    flat = save(tmp_path / "flat.png", Image.fromarray(gray16_as_8_bit(gray16)))
    assert np.abs(np.asarray(read_display_image(deep), dtype=int) - np.asarray(Image.open(flat), dtype=int)).max() <= 1

    anomaly_map = torch.rand(64, 64, generator=torch.Generator().manual_seed(0))

    def item(path: Path) -> ImageItem:
        return ImageItem(image=torch.zeros(3, 64, 64), image_path=str(path), anomaly_map=anomaly_map)

    visualizer = PluginImageVisualizer(fields=["image"], overlay_fields=[("image", ["anomaly_map"])])
    ours = np.asarray(visualizer.visualize_item(item(deep)), dtype=int)
    reference = np.asarray(visualizer.visualize_item(item(flat)), dtype=int)
    assert ours.shape == reference.shape
    assert np.abs(ours - reference).max() <= 2
    stock = ImageVisualizer(fields=["image"], overlay_fields=[("image", ["anomaly_map"])])
    stock_panel = np.asarray(stock.visualize(item(deep)), dtype=int)[:, :256]
    assert stock_panel.mean() > 240  # Anomalib's own reader shows the 16-bit image white
    assert abs(ours[:, :256].mean() - reference[:, :256].mean()) < 1


def test_visualizer_writes_files_where_anomalib_does(tmp_path: Path) -> None:
    gray16 = _gradient16()
    deep = save(tmp_path / "in" / "deep.png", Image.fromarray(gray16))
    batch = ImageBatch.collate(
        [
            ImageItem(image=torch.rand(3, 64, 64), image_path=str(deep), anomaly_map=torch.rand(64, 64)),
        ]
    )
    visualizer = PluginImageVisualizer(fields=["image"], overlay_fields=[("image", ["anomaly_map"])])
    trainer = SimpleNamespace(default_root_dir=tmp_path / "run", datamodule=None)
    visualizer.on_predict_batch_end(trainer, None, batch, batch, 0)
    written = generate_output_filename(deep, tmp_path / "run" / "images", mkdir=False)
    assert written.is_file()
    panel = np.asarray(Image.open(written).convert("RGB"), dtype=int)[:, :256]
    expected = np.asarray(visualizer.visualize_item(next(iter(batch))), dtype=int)[:, :256]
    assert np.array_equal(panel, expected)
    assert panel.mean() < 200


def test_errors_from_loader_workers_keep_their_type_and_file_name(tmp_path: Path) -> None:
    root = write_mvtec_set(tmp_path)
    datamodule = LayoutDataModule(root=str(root), category="bottle", layout="mvtec_ad")
    reference = MVTecAD(root=root, category="bottle", num_workers=0)
    datamodule.setup()
    reference.setup()
    safe = datamodule.test_data
    loader = DataLoader(safe, batch_size=16, num_workers=1, collate_fn=safe.collate_fn)
    _assert_batches_equal(next(iter(loader)), _one_batch(reference.test_data))
    broken = Path(safe.samples.image_path.iloc[0])
    broken.write_bytes(b"")
    with pytest.raises(ImageReadError, match=str(broken).replace(".", r"\.")):
        next(iter(loader))
