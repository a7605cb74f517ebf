"""Training on cached encoder outputs gives the same losses and prompts as training on images."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from anomalib.engine import Engine
from lightning.pytorch import seed_everything
from torchvision.transforms.v2 import RandomHorizontalFlip

from anomalib_glocalclip import AuxiliarySource, AuxiliaryTransfer, GlocalCLIP
from anomalib_glocalclip.glocalclip.feature_cache import FeatureCache, FeatureCacheCallback, callback, choose_storage
from anomalib_glocalclip.glocalclip.feature_cache import jpeg_decoding as decoding
from anomalib_glocalclip.glocalclip.feature_cache import storage as cache_storage
from anomalib_glocalclip.testing import TINY_CLIP_CONFIG, generate_visa
from training_helpers import StepRecorder

TINY = {"backbone": str(TINY_CLIP_CONFIG), "pretrained": None, "image_size": 64}


@pytest.fixture(scope="module")
def visa(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_visa(tmp_path_factory.mktemp("aux") / "visa", categories=("candle", "pcb1"), seed=0)


def train(visa: Path, root: Path, augmentations=None, **model_args) -> tuple[GlocalCLIP, StepRecorder]:
    seed_everything(5)
    model = GlocalCLIP(**TINY, **model_args)
    recorder = StepRecorder()
    datamodule = AuxiliaryTransfer(auxiliary=AuxiliarySource("visa", str(visa)), train_batch_size=4, num_workers=0,
                                   train_augmentations=augmentations)
    engine = Engine(default_root_dir=root, accelerator="cpu", max_epochs=2, logger=False, callbacks=[recorder],
                    enable_progress_bar=False, enable_model_summary=False)
    engine.fit(model, datamodule=datamodule)
    return model, recorder


@pytest.mark.parametrize("storage", ["device", "host", "disk"])
def test_cached_training_equals_training_on_images(visa: Path, tmp_path: Path, storage: str) -> None:
    cached, cached_steps = train(visa, tmp_path / "cached", cache_storage=storage)
    plain, plain_steps = train(visa, tmp_path / "plain", cache_features=False)
    assert all(cached_steps.cached)
    assert not any(plain_steps.cached)
    assert len(cached_steps.losses) == len(plain_steps.losses) == 2 * 3  # 2 epochs of 10 images in batches of 4
    torch.testing.assert_close(torch.tensor(cached_steps.losses), torch.tensor(plain_steps.losses))
    for (name, a), b in zip(cached.model.prompt_learner.state_dict().items(),
                            plain.model.prompt_learner.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
    cache_callbacks = [cb for cb in cached.trainer.callbacks if isinstance(cb, FeatureCacheCallback)]
    assert len(cache_callbacks) == 1
    assert cache_callbacks[0].cache is None  # released at the end of fit
    assert not list(tmp_path.glob("cached/**/glocalclip_features_*"))  # no memmap files left behind


def test_random_augmentations_switch_caching_off(visa: Path, tmp_path: Path) -> None:
    _, steps = train(visa, tmp_path, augmentations=RandomHorizontalFlip())
    assert not any(steps.cached)


def test_cache_keeps_bf16_bit_for_bit_on_disk(tmp_path: Path) -> None:
    features = torch.randn(6, 8).bfloat16()
    patches = torch.randn(1, 6, 4, 8).bfloat16()
    labels = torch.tensor([0, 1, 0, 1, 1, 0])
    masks = torch.rand(6, 5, 5) > 0.5
    batches = [(features[i : i + 3], patches[:, i : i + 3], labels[i : i + 3], masks[i : i + 3]) for i in (0, 3)]
    cache = FeatureCache.build(batches, lambda batch: batch, 6, torch.device("cpu"), storage="disk", scratch=tmp_path)
    batch = cache.collate([5, 0, 2])
    assert batch.global_features.dtype == torch.bfloat16
    assert torch.equal(batch.global_features, features[[5, 0, 2]])
    assert torch.equal(batch.patch_features, patches[:, [5, 0, 2]])
    assert torch.equal(batch.gt_mask, masks[[5, 0, 2]])
    assert torch.equal(batch.gt_label, labels[[5, 0, 2]])
    folder = cache.folder
    cache.release()
    assert not folder.exists()


def test_storage_is_chosen_by_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_storage, "available_host_memory", lambda: 10_000)
    assert choose_storage(4_000, torch.device("cpu")) == "host"
    assert choose_storage(6_000, torch.device("cpu")) == "disk"


def test_data_package_never_calls_the_model() -> None:
    data = Path(__import__("anomalib_glocalclip.data", fromlist=["x"]).__file__).parent
    text = "\n".join(path.read_text(encoding="utf-8") for path in data.rglob("*.py"))
    for needle in ("cached_train_dataloader", "hasattr(model", "lightning_module", "glocalclip.glocalclip"):
        assert needle not in text, needle


def test_cached_batch_passes_the_pre_processor_untouched() -> None:
    from anomalib_glocalclip.components import clip_pre_processor

    masks = torch.rand(2, 16, 16) > 0.5
    cache = FeatureCache.build([(torch.randn(2, 8), torch.randn(1, 2, 4, 8), torch.tensor([0, 1]), masks)],
                               lambda batch: batch, 2, torch.device("cpu"), storage="host")
    batch = cache.collate([1, 0])
    clip_pre_processor(16).on_train_batch_start(None, None, batch, 0)
    assert batch.image is None
    assert torch.equal(batch.gt_mask, masks[[1, 0]])


class TestDecodeOnDevice:
    """The caching pass's JPEGs decoded by ``torchvision.io.decode_jpeg`` in batches (here on the CPU)."""

    @staticmethod
    def dataset_with_odd_files(visa: Path, folder: Path):
        """The generated VisA samples, plus a grayscale JPEG, a CMYK JPEG and a PNG (normal images)."""
        import pandas as pd
        from PIL import Image as PILImage

        from anomalib_glocalclip import AuxiliarySource
        from anomalib_glocalclip.data.dataset import SampleDataset

        table = AuxiliarySource("visa", str(visa)).samples()
        source = PILImage.open(table.iloc[0].image_path).convert("RGB").resize((48, 40))
        folder.mkdir()
        extra = []
        for name, image in (("gray.jpg", source.convert("L")), ("cmyk.jpg", source.convert("CMYK")),
                            ("plain.png", source)):
            image.save(folder / name)
            extra.append({**table.iloc[0].to_dict(), "image_path": str(folder / name), "mask_path": "",
                          "label_index": 0, "label": "good"})
        samples = pd.concat([pd.DataFrame(extra), table], ignore_index=True)
        samples.attrs["task"] = "segmentation"
        from torchvision.transforms.v2 import Resize

        return SampleDataset(samples, augmentations=Resize((32, 32)))

    def test_cpu_decoding_equals_the_pil_reader(self, visa: Path, tmp_path: Path) -> None:
        dataset = self.dataset_with_odd_files(visa, tmp_path / "odd")
        samples = decoding.JpegSamples(dataset)
        items = [samples[index] for index in range(len(samples))]
        read_by_pil = {Path(item.image_path).name for item in items if item.data is None}
        assert read_by_pil == {"cmyk.jpg", "plain.png"}  # the grayscale and the generated RGB JPEGs are decoded
        decoded = decoding.decode_samples(items, torch.device("cpu"), dataset.augmentations)
        expected = dataset.collate_fn([dataset[index] for index in range(len(dataset))])
        assert torch.equal(decoded.image, expected.image)
        assert torch.equal(decoded.gt_mask, expected.gt_mask)
        assert torch.equal(decoded.gt_label, expected.gt_label)
        assert decoded.gt_mask.any()  # the anomalous samples' masks came through

    def test_undecodable_jpeg_is_named(self, visa: Path, tmp_path: Path) -> None:
        from anomalib_glocalclip.data import ImageReadError

        dataset = self.dataset_with_odd_files(visa, tmp_path / "odd")
        broken = tmp_path / "broken.jpg"
        row = dataset.samples.index[dataset.samples["image_path"].str.endswith(".JPG")][0]  # a generated RGB JPEG
        data = Path(dataset.samples.loc[row, "image_path"]).read_bytes()
        broken.write_bytes(data[: len(data) // 2])  # a readable header, half the scan
        dataset.samples.loc[row, "image_path"] = str(broken)
        samples = decoding.JpegSamples(dataset)
        items = [samples[index] for index in range(len(samples))]
        with pytest.raises(ImageReadError, match=r"broken\.jpg could not be decoded.*decode_on_device=False"):
            decoding.decode_samples(items, torch.device("cpu"), dataset.augmentations)

    def test_training_equals_pil_decoding(self, visa: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        calls = []
        decode = decoding.decode_samples

        def counting_decode(samples, *args):
            calls.append(len(samples))
            return decode(samples, *args)

        monkeypatch.setattr(callback, "decode_samples", counting_decode)
        on_device, device_steps = train(visa, tmp_path / "device", decode_on_device=True)
        assert calls == [10]  # one caching batch of all 10 images
        pil, pil_steps = train(visa, tmp_path / "pil")
        torch.testing.assert_close(torch.tensor(device_steps.losses), torch.tensor(pil_steps.losses), atol=0, rtol=0)
        for a, b in zip(on_device.model.prompt_learner.state_dict().values(),
                        pil.model.prompt_learner.state_dict().values(), strict=True):
            torch.testing.assert_close(a, b, atol=0, rtol=0)
