"""The bad-input suite, data level: each odd or broken file through the path a user's data takes.

Datasets: the samples of an Anomalib ``Folder`` datamodule over a small set, read by the plugin's ``SampleDataset``
(the dataset of the plugin's datamodules); prediction: a folder's ``PredictDataset`` checked by
``check_predict_files``. Each case asserts the exact outcome: the right pixels, or an error naming the file and a fix
(for prediction, all of them before the first batch).

Decision on EXIF orientation: like Anomalib, readers ignore it, because masks are drawn on the stored pixels; an
EXIF-rotated image is read as stored.
"""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from anomalib.data import Folder, MVTecAD, PredictDataset
from anomalib.data.dataclasses import ImageItem
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.transforms.v2 import Resize
from torchvision.tv_tensors import Mask

from anomalib_glocalclip.data.checks import ProblemKind, check_samples
from anomalib_glocalclip.data.dataset import SampleDataset
from anomalib_glocalclip.data.io import ImageReadError
from anomalib_glocalclip.data.predict_input import PredictFilesError, check_predict_files
from image_files import (
    SIZE,
    exif_rotated_jpeg,
    gray16_array,
    gray16_as_8_bit,
    rgb_array,
    save,
    save_mask,
    save_rgb,
    truncated_bytes,
    write_folder_set,
    write_mvtec_set,
)

_CORRUPT_FIX = "re-export the file or remove it from the dataset"


def _folder_test_data(root: Path, *, resize_masks: bool = False) -> SampleDataset:
    """The test samples of a ``Folder`` datamodule over ``root`` (``write_folder_set`` plus extra files), read by
    the plugin's dataset."""
    datamodule = Folder(
        name="parts",
        root=root,
        normal_dir="good",
        abnormal_dir="bad",
        normal_test_dir="test_good",
        mask_dir="masks",
        num_workers=0,
        val_split_mode="same_as_test",  # keep every test image in the test data
    )
    datamodule.setup()
    return SampleDataset(datamodule.test_data.samples, resize_masks=resize_masks)


def _item(dataset: SampleDataset, name: str) -> ImageItem:
    names = [Path(path).name for path in dataset.samples.image_path]
    return dataset[names.index(name)]


def _read_normal(tmp_path: Path, name: str, image: Image.Image, **save_kwargs: object) -> torch.Tensor:
    """Save ``image`` as a normal test image of a Folder set; the image the dataset reads, ``[3, H, W]``."""
    root = write_folder_set(tmp_path)
    save(root / "test_good" / name, image, **save_kwargs)
    item = _item(_folder_test_data(root), name)
    assert item.gt_label == 0
    assert torch.equal(item.gt_mask.as_subclass(torch.Tensor), torch.zeros(item.image.shape[-2:], dtype=torch.uint8))
    return item.image.as_subclass(torch.Tensor)


def _expected(array: np.ndarray) -> torch.Tensor:
    """8-bit ``[H, W, 3]`` pixels as the readers' ``[3, H, W]`` float tensor."""
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float() * (1 / 255.0)


# Files read correctly ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["deep.png", "deep.tiff"])
def test_16_bit_grayscale_reads_like_its_8_bit_version(tmp_path: Path, name: str) -> None:
    gray16 = gray16_array()
    image = _read_normal(tmp_path, name, Image.fromarray(gray16))
    assert image.shape == (3, SIZE, SIZE)
    assert (image - _expected(gray16_as_8_bit(gray16))).abs().max() <= 1 / 255 + 1e-6


def test_rgba_drops_alpha(tmp_path: Path) -> None:
    array = rgb_array()
    alpha = np.random.default_rng(9).integers(0, 256, (SIZE, SIZE, 1), dtype=np.uint8)
    image = _read_normal(tmp_path, "rgba.png", Image.fromarray(np.concatenate([array, alpha], axis=-1)))
    assert torch.equal(image, _expected(array))


@pytest.mark.parametrize("transparency", [None, 0])
def test_palette_reads_its_colours(tmp_path: Path, transparency: int | None) -> None:
    palette = Image.fromarray(rgb_array()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    kwargs = {} if transparency is None else {"transparency": transparency}
    image = _read_normal(tmp_path, "palette.png", palette, **kwargs)
    assert torch.equal(image, _expected(np.asarray(palette.convert("RGB"))))


def test_grayscale_is_replicated(tmp_path: Path) -> None:
    gray = rgb_array()[..., 0]
    image = _read_normal(tmp_path, "gray.png", Image.fromarray(gray))
    assert torch.equal(image, _expected(np.repeat(gray[..., None], 3, axis=-1)))


def test_exif_rotated_jpeg_is_read_as_stored_and_stays_aligned_with_its_mask(tmp_path: Path) -> None:
    root = write_folder_set(tmp_path)
    path = exif_rotated_jpeg(root / "bad" / "002.jpg", rgb_array(height=32, width=SIZE), orientation=6)
    save_mask(root / "masks" / "002.png", height=32, width=SIZE)
    item = _item(_folder_test_data(root), "002.jpg")
    stored = np.asarray(Image.open(path).convert("RGB"))  # decoded pixels, orientation not applied
    assert item.image.shape == (3, 32, SIZE)
    assert torch.equal(item.image.as_subclass(torch.Tensor), _expected(stored))
    assert item.gt_mask.shape == (32, SIZE)
    assert int(item.gt_mask.sum()) == 8 * 16


def test_odd_sizes_are_read_at_their_size(tmp_path: Path) -> None:
    root = write_folder_set(tmp_path)
    array = save_rgb(root / "bad" / "002.png", seed=5, height=37, width=53)
    save_mask(root / "masks" / "002.png", height=37, width=53)
    item = _item(_folder_test_data(root), "002.png")
    assert torch.equal(item.image.as_subclass(torch.Tensor), _expected(array))
    assert item.gt_mask.shape == (37, 53)
    assert item.gt_label == 1


# Files refused with their name -----------------------------------------------------------------------------------


def _broken_files() -> dict[str, bytes]:
    image = Image.fromarray(rgb_array())
    return {
        "empty.png": b"",
        "text.png": b"this is a text file named like an image\n",
        "cut.png": truncated_bytes(image, "PNG"),
        "cut.jpg": truncated_bytes(image, "JPEG", keep=0.5),
    }


@pytest.mark.parametrize("name", list(_broken_files()))
def test_broken_dataset_image_is_refused_by_name(tmp_path: Path, name: str) -> None:
    root = write_folder_set(tmp_path)
    path = root / "test_good" / name
    path.write_bytes(_broken_files()[name])
    dataset = _folder_test_data(root)
    with pytest.raises(ImageReadError) as caught:
        _item(dataset, name)
    assert str(path) in str(caught.value)
    assert _CORRUPT_FIX in str(caught.value)
    problems = check_samples(dataset.samples, full_decode=True)
    assert [(problem.kind, problem.paths) for problem in problems] == [(ProblemKind.UNREADABLE, (path,))]


def _check_predict_folder(folder: Path) -> PredictDataset:
    """Anomalib's ``PredictDataset`` over ``folder`` as ``Engine.predict(data_path=...)`` loads it, checked."""
    dataset = PredictDataset(folder)
    check_predict_files(SimpleNamespace(predict_dataloaders=[DataLoader(dataset, collate_fn=dataset.collate_fn)]))
    return dataset


@pytest.mark.parametrize("name", list(_broken_files()))
def test_predict_refuses_a_broken_file_by_name_and_leaves_the_dataset_alone(tmp_path: Path, name: str) -> None:
    for index in range(2):
        save_rgb(tmp_path / f"{index}.png", seed=index)
    broken = tmp_path / name
    broken.write_bytes(_broken_files()[name])
    dataset = PredictDataset(tmp_path)
    with pytest.raises(PredictFilesError) as caught:
        check_predict_files(SimpleNamespace(predict_dataloaders=DataLoader(dataset, collate_fn=dataset.collate_fn)))
    assert [path for path, _ in caught.value.unreadable] == [broken]
    assert caught.value.misread == []
    message = str(caught.value)
    assert str(broken) in message
    assert _CORRUPT_FIX in message
    assert "0.png" not in message
    assert "replace or remove the unreadable files" in message
    assert len(dataset.image_filenames) == 3  # Anomalib's file list is Anomalib's


def test_predict_passes_a_readable_folder(tmp_path: Path) -> None:
    arrays = [save_rgb(tmp_path / f"{index}.png", seed=index) for index in range(2)]
    dataset = _check_predict_folder(tmp_path)
    for index, array in enumerate(arrays):
        assert torch.equal(dataset[index].image.as_subclass(torch.Tensor), _expected(array))


def test_predict_refuses_files_anomalib_reads_wrong_by_name(tmp_path: Path) -> None:
    save_rgb(tmp_path / "a.png")
    save(tmp_path / "deep.png", Image.fromarray(gray16_array()))
    with pytest.raises(PredictFilesError) as caught:
        _check_predict_folder(tmp_path)
    assert caught.value.misread == [tmp_path / "deep.png"]
    message = str(caught.value)
    assert str(tmp_path / "deep.png") in message
    assert "a.png" not in message
    assert f"--data LayoutDataModule --data.layout normal_folder --data.root {tmp_path}" in message


def test_mask_of_another_size_names_both_files(tmp_path: Path) -> None:
    root = write_folder_set(tmp_path)
    save_rgb(root / "bad" / "002.png", seed=5)
    mask = root / "masks" / "002.png"
    save_mask(mask, height=32, width=32)
    with pytest.raises(ImageReadError) as caught:
        _item(_folder_test_data(root), "002.png")
    message = str(caught.value)
    assert str(mask) in message
    assert str(root / "bad" / "002.png") in message
    assert "Re-export the mask at the image's size" in message
    resized = _item(_folder_test_data(root, resize_masks=True), "002.png").gt_mask
    expected = np.asarray(Image.fromarray(np.asarray(Image.open(mask))).resize((SIZE, SIZE), Image.Resampling.NEAREST))
    assert torch.equal(resized.as_subclass(torch.Tensor), torch.from_numpy((expected > 0).astype(np.uint8)))
    assert isinstance(resized, Mask)  # so that the augmentations resize it with its image (a plain tensor passes)
    augmented = _folder_test_data(root, resize_masks=True)
    augmented.augmentations = Resize((24, 20))
    item = _item(augmented, "002.png")
    assert tuple(item.image.shape[-2:]) == tuple(item.gt_mask.shape[-2:]) == (24, 20)


def test_mask_deleted_after_setup_names_mask_and_image(tmp_path: Path) -> None:
    root = write_folder_set(tmp_path)
    dataset = _folder_test_data(root)
    (root / "masks" / "001.png").unlink()
    with pytest.raises(ImageReadError) as caught:
        _item(dataset, "001.png")
    assert str(root / "masks" / "001.png") in str(caught.value)
    assert str(root / "bad" / "001.png") in str(caught.value)
    assert "Add the mask" in str(caught.value)


def test_anomalous_image_without_mask_in_a_pixel_level_set(tmp_path: Path) -> None:
    datamodule = MVTecAD(root=write_mvtec_set(tmp_path), category="bottle", num_workers=0)
    datamodule.setup()
    samples = datamodule.test_data.samples.copy()
    samples.attrs = dict(datamodule.test_data.samples.attrs)
    anomalous = samples.index[samples.label_index == 1][0]
    samples.loc[anomalous, "mask_path"] = None
    datamodule.test_data.samples = samples
    image_path = Path(samples.loc[anomalous, "image_path"])
    problems = check_samples(datamodule.test_data.samples)
    assert [(problem.kind, problem.paths) for problem in problems] == [(ProblemKind.MISSING_MASK, (image_path,))]
    with pytest.raises(ImageReadError, match="has no mask") as caught:
        SampleDataset(datamodule.test_data.samples)[int(anomalous)]
    assert str(image_path) in str(caught.value)


def test_rgb_mask_marks_every_coloured_pixel(tmp_path: Path) -> None:
    root = write_folder_set(tmp_path)
    save_rgb(root / "bad" / "002.png", seed=5)
    colours = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
    colours[0:4, 0:4] = (255, 0, 0)
    colours[10:12, 10:15] = (0, 0, 1)  # dark blue: zero luminance in an "L" conversion
    save(root / "masks" / "002.png", Image.fromarray(colours))
    assert int(_item(_folder_test_data(root), "002.png").gt_mask.sum()) == 16 + 10


def test_empty_or_missing_predict_folder_is_refused_by_anomalib_naming_it(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(ValueError, match=str(tmp_path)):
        PredictDataset(tmp_path)
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nowhere")):
        PredictDataset(tmp_path / "nowhere")


def test_only_broken_files_are_refused_all_together(tmp_path: Path) -> None:
    for name, content in _broken_files().items():
        (tmp_path / name).write_bytes(content)
    with pytest.raises(PredictFilesError) as caught:
        _check_predict_folder(tmp_path)
    assert sorted(path.name for path, _ in caught.value.unreadable) == sorted(_broken_files())


def test_image_level_table_needs_no_masks(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    save_rgb(path)
    samples = pd.DataFrame({"image_path": [str(path)], "mask_path": [""], "label_index": [1]})
    samples.attrs["task"] = "classification"
    assert check_samples(samples, full_decode=True) == []
