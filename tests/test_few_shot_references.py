"""Choosing the few-shot reference images: seeded and stable, from a folder or a datamodule, with clear errors."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from anomalib.data import Folder, MVTecAD
from torchvision.transforms.v2 import Resize

from anomalib_glocalclip.data.io import ImageReadError
from anomalib_glocalclip.few_shot import (
    read_reference_images,
    reference_images_from_datamodule,
    reference_images_from_folder,
    select_reference_indices,
)
from anomalib_glocalclip.testing import generate_folder, generate_mvtec_ad, generate_normal_folder


def test_indices_are_seeded_distinct_and_sorted() -> None:
    first = select_reference_indices(20, 4, seed=3)
    assert first == select_reference_indices(20, 4, seed=3)
    assert first == sorted(set(first))
    assert len(first) == 4
    assert all(0 <= index < 20 for index in first)
    assert len({tuple(select_reference_indices(20, 4, seed=seed)) for seed in range(5)}) > 1


def test_indices_are_the_first_k_of_one_permutation() -> None:
    """Same seed: more shots keep the images of fewer shots; the choice follows ``torch.randperm``."""
    permutation = torch.randperm(12, generator=torch.Generator().manual_seed(7)).tolist()
    for k in range(1, 13):
        assert select_reference_indices(12, k, seed=7) == sorted(permutation[:k])
    assert set(select_reference_indices(12, 2, seed=7)) <= set(select_reference_indices(12, 4, seed=7))


def test_more_shots_than_samples_takes_all_of_them() -> None:
    assert select_reference_indices(3, 8, seed=0) == [0, 1, 2]
    assert select_reference_indices(0, 2, seed=0) == []


def test_bad_k_is_rejected() -> None:
    with pytest.raises(ValueError, match="k must be positive"):
        select_reference_indices(5, 0)


def test_folder_gives_k_seeded_images(tmp_path: Path) -> None:
    folder = generate_normal_folder(tmp_path / "refs", n=6)
    (folder / "notes.txt").write_text("not an image")
    (folder / ".hidden.png").write_bytes(b"")
    (folder / "sub").mkdir()

    chosen = reference_images_from_folder(folder, k=3, seed=1)

    assert chosen == reference_images_from_folder(folder, k=3, seed=1)
    candidates = sorted(folder.glob("[0-9]*.png"))
    assert chosen == [candidates[index] for index in select_reference_indices(6, 3, seed=1)]


def test_folder_with_fewer_images_than_k_uses_all_with_a_warning(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    folder = generate_normal_folder(tmp_path / "refs", n=2)
    with caplog.at_level(logging.WARNING):
        chosen = reference_images_from_folder(folder, k=4)
    assert chosen == sorted(folder.glob("*.png"))
    assert str(folder) in caplog.text
    assert "fewer than k = 4" in caplog.text


def test_missing_folder_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_folder"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        reference_images_from_folder(missing, k=2)


def test_file_instead_of_folder_is_named(tmp_path: Path) -> None:
    file = tmp_path / "image.png"
    file.write_bytes(b"x")
    with pytest.raises(NotADirectoryError, match=str(file)):
        reference_images_from_folder(file, k=2)


def test_folder_without_images_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    generate_normal_folder(folder / "nested", n=2)  # images in a sub-folder are not read
    (folder / "readme.txt").write_text("no images here")
    with pytest.raises(ValueError, match=f"{folder} holds no image"):
        reference_images_from_folder(folder, k=2)


def test_corrupt_reference_image_is_named(tmp_path: Path) -> None:
    folder = generate_normal_folder(tmp_path / "refs", n=3)
    corrupt = folder / "001.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(ImageReadError, match=str(corrupt)):
        reference_images_from_folder(folder, k=3)


def test_only_chosen_images_are_read(tmp_path: Path) -> None:
    folder = generate_normal_folder(tmp_path / "refs", n=5)
    read: list[Path] = []
    chosen = reference_images_from_folder(folder, k=2, seed=4, read=read.append)
    assert read == chosen


def test_mvtec_datamodule_gives_k_seeded_normal_training_images(tmp_path: Path) -> None:
    root = generate_mvtec_ad(tmp_path / "mvtec", categories=("bottle",), n_train=6)
    datamodule = MVTecAD(root=root, category="bottle", num_workers=0)  # not set up: the helper does it

    chosen = reference_images_from_datamodule(datamodule, k=4, seed=2)

    train_images = sorted((root / "bottle" / "train" / "good").glob("*.png"))
    assert chosen == [train_images[index] for index in select_reference_indices(6, 4, seed=2)]
    assert chosen == reference_images_from_datamodule(datamodule, k=4, seed=2)


def test_folder_datamodule_takes_normal_images_only(tmp_path: Path) -> None:
    root = generate_folder(tmp_path / "folder", n_good=5, n_bad=4)
    datamodule = Folder(
        name="bottle",
        root=root,
        normal_dir="good",
        abnormal_dir="bad",
        mask_dir="masks",
        num_workers=0,
    )
    datamodule.setup()
    chosen = reference_images_from_datamodule(datamodule, k=10)
    normal = datamodule.train_data.samples.query("label_index == 0")["image_path"]
    assert chosen == sorted(Path(path) for path in normal)
    assert all(path.parent.name == "good" for path in chosen)


def test_train_split_without_normal_images_gets_a_clear_error() -> None:
    samples = pd.DataFrame({"image_path": ["/data/bad/000.png"], "label_index": [1]})
    datamodule = SimpleNamespace(train_data=SimpleNamespace(samples=samples), root="/data")
    with pytest.raises(ValueError, match=r"/data holds no normal image.*reference_images"):
        reference_images_from_datamodule(datamodule, k=2)


def test_read_reference_images_applies_the_transform(tmp_path: Path) -> None:
    """The generated folder holds images of odd sizes and modes; the transform brings them to one size."""
    folder = generate_normal_folder(tmp_path / "refs", n=4, odd_images=True)
    paths = reference_images_from_folder(folder, k=3)
    images = read_reference_images(paths, Resize((32, 32), antialias=True))
    assert images.shape == (3, 3, 32, 32)
    assert images.dtype == torch.float32
