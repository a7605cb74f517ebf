"""GlocalCLIP learning prompts through Anomalib on generated data, and reusing them zero-shot."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from anomalib.data import MVTecAD
from anomalib.engine import Engine
from lightning.pytorch.callbacks import Callback
from PIL import Image

from anomalib_glocalclip import AuxiliarySource, AuxiliaryTransfer, GlocalCLIP
from anomalib_glocalclip.data import DatasetLayoutError, ImageReadError
from anomalib_glocalclip.testing import TINY_CLIP_CONFIG, generate_mvtec_ad, generate_visa

# sigma 1: the paper's 8 px smoothing is for 518 px inputs; these images are 64 px.
TINY = {"backbone": str(TINY_CLIP_CONFIG), "pretrained": None, "image_size": 64, "sigma": 1.0}


class LossRecorder(Callback):
    """Records the training loss of every step, per epoch."""

    def __init__(self) -> None:
        self.epochs: list[list[float]] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.epochs.append([])

    def on_train_batch_end(self, trainer, pl_module, outputs, *args) -> None:
        self.epochs[-1].append(float(outputs["loss"]))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("data")
    visa = generate_visa(root / "visa", categories=("candle", "pcb1", "capsules", "cashew"), n_test_good=3,
                         n_test_bad=5, seed=0, odd_images=True)
    mvtec = generate_mvtec_ad(root / "mvtec", categories=("bottle",), n_test_good=6, n_test_bad=12,
                              defects=("blob",), odd_images=False, seed=1)
    return {"visa": visa, "mvtec": mvtec}


@pytest.fixture(scope="module")
def trained(data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory, target_scores) -> dict:
    """Prompts learned for 6 epochs of 8 steps on the generated auxiliary set, validated on the target."""
    torch.manual_seed(0)
    model = GlocalCLIP(**TINY, learning_rate=1e-2)  # 48 steps instead of the paper's thousands: larger steps
    before = target_scores(model, data["mvtec"])
    model.train()
    recorder = LossRecorder()
    datamodule = AuxiliaryTransfer(
        auxiliary=AuxiliarySource("visa", str(data["visa"])),
        target=MVTecAD(root=data["mvtec"], category="bottle"),
        train_batch_size=4,
        num_workers=0,
    )
    engine = Engine(default_root_dir=tmp_path_factory.mktemp("run"), accelerator="cpu", max_epochs=6, logger=False,
                    callbacks=[recorder], enable_progress_bar=False)
    engine.fit(model, datamodule=datamodule)
    after = target_scores(model, data["mvtec"])
    return {"model": model, "before": before, "after": after, "losses": recorder.epochs, "engine": engine}


def test_loss_falls_and_prompts_separate_a_learnable_anomaly(trained: dict, data: dict[str, Path]) -> None:
    losses = trained["losses"]
    assert len(losses) == 6
    first_steps, last_epoch = sum(losses[0][:3]) / 3, sum(losses[-1]) / len(losses[-1])
    assert last_epoch < 0.85 * first_steps, losses
    _, pixel_before = trained["before"]
    _, pixel_after = trained["after"]
    # The target category was never seen; its anomalies are of the kind learned on the auxiliary set. (The
    # random tiny CLIP's class token carries little, so only the local branch is held to a bar.)
    assert pixel_after > 0.75, (pixel_before, pixel_after)
    assert pixel_after > pixel_before + 0.15, (pixel_before, pixel_after)


def test_prompt_file_and_checkpoint_are_written_and_small(trained: dict) -> None:
    model: GlocalCLIP = trained["model"]
    prompts = model.prompt_file_path()
    checkpoint = Path(trained["engine"].trainer.checkpoint_callback.best_model_path or
                      trained["engine"].trainer.checkpoint_callback.last_model_path)
    assert prompts.is_file()
    assert prompts.parent == checkpoint.parent
    assert prompts.stat().st_size < 50_000
    assert checkpoint.stat().st_size < 500_000  # no CLIP weights inside
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    assert not any("backbone" in key for key in state)


def test_prompt_file_and_checkpoint_reproduce_scores_exactly(
    trained: dict, data: dict[str, Path], target_scores
) -> None:
    model: GlocalCLIP = trained["model"]
    checkpoint = trained["engine"].trainer.checkpoint_callback.best_model_path
    from_checkpoint = GlocalCLIP.load_from_checkpoint(checkpoint)
    from_prompts = GlocalCLIP(**TINY, prompt_weights=str(model.prompt_file_path()))
    reference = target_scores(model, data["mvtec"])
    assert target_scores(from_checkpoint, data["mvtec"]) == reference
    assert target_scores(from_prompts, data["mvtec"]) == reference
    # the checkpoint also restores the thresholds the target's validation set
    torch.testing.assert_close(from_checkpoint.post_processor._image_threshold, model.post_processor._image_threshold)


def test_zero_shot_test_through_engine(trained: dict, data: dict[str, Path], tmp_path: Path) -> None:
    model = GlocalCLIP(**TINY, prompt_weights=str(trained["model"].prompt_file_path()))
    engine = Engine(default_root_dir=tmp_path, accelerator="cpu", logger=False, enable_progress_bar=False)
    results = engine.test(model, datamodule=MVTecAD(root=data["mvtec"], category="bottle", num_workers=0))[0]
    assert set(results) == {"image_AUROC", "image_AUPR", "image_F1Max", "pixel_AUROC", "pixel_AUPRO", "pixel_F1Max"}
    assert results["pixel_AUROC"] == pytest.approx(trained["after"][1], abs=0.02)  # the same scores, via Anomalib
    heatmaps = list(Path(engine.trainer.default_root_dir).glob("images/*/*.png"))
    assert len(heatmaps) == 18


class TestBadAuxiliaryData:
    def _fit(self, visa: Path, tmp_path: Path) -> None:
        model = GlocalCLIP(**TINY)
        datamodule = AuxiliaryTransfer(auxiliary=AuxiliarySource("visa", str(visa)), num_workers=0)
        engine = Engine(default_root_dir=tmp_path / "run", accelerator="cpu", max_epochs=1, logger=False,
                        enable_progress_bar=False)
        engine.fit(model, datamodule=datamodule)

    def test_corrupt_image_names_the_file(self, tmp_path: Path) -> None:
        visa = generate_visa(tmp_path / "visa", categories=("candle",), seed=0, odd_images=True)
        broken = next((visa / "candle" / "Data" / "Images" / "Anomaly").glob("*.JPG"))
        broken.write_bytes(broken.read_bytes()[:200])
        with pytest.raises(ImageReadError, match=broken.name):
            self._fit(visa, tmp_path)

    def test_missing_mask_names_the_image(self, tmp_path: Path) -> None:
        visa = generate_visa(tmp_path / "visa", categories=("candle",), seed=0, odd_images=True)
        mask = next((visa / "candle" / "Data" / "Masks" / "Anomaly").glob("*.png"))
        mask.unlink()
        with pytest.raises(DatasetLayoutError, match="Mask missing"):
            self._fit(visa, tmp_path)

    def test_mask_of_another_size(self, tmp_path: Path) -> None:
        visa = generate_visa(tmp_path / "visa", categories=("candle",), seed=0, odd_images=False)
        mask = next((visa / "candle" / "Data" / "Masks" / "Anomaly").glob("*.png"))
        Image.open(mask).resize((10, 10)).save(mask)
        with pytest.raises(ImageReadError, match="masks must have the size of their image"):
            self._fit(visa, tmp_path)

    def test_unknown_category(self, tmp_path: Path) -> None:
        visa = generate_visa(tmp_path / "visa", categories=("candle",), seed=0, odd_images=True)
        datamodule = AuxiliaryTransfer(auxiliary=AuxiliarySource("visa", str(visa), categories=["pcb9"]))
        with pytest.raises(DatasetLayoutError, match=r"Unknown visa category 'pcb9'.*candle"):
            datamodule.setup()

    def test_empty_folder(self, tmp_path: Path) -> None:
        (tmp_path / "empty").mkdir()
        with pytest.raises(DatasetLayoutError, match="No mvtec_ad categories found"):
            AuxiliaryTransfer(auxiliary=AuxiliarySource("mvtec_ad", str(tmp_path / "empty"))).setup()


def test_image_level_auxiliary_data_trains_the_global_branch_only(tmp_path: Path) -> None:
    from anomalib_glocalclip.testing import generate_folder

    folder = generate_folder(tmp_path / "folder", with_masks=False, n_good=3, n_bad=3, odd_images=True)
    datamodule = AuxiliaryTransfer(auxiliary=AuxiliarySource("folder", str(folder)), num_workers=0,
                                   train_batch_size=6)
    datamodule.setup()
    assert datamodule.train_data.task == "classification"
    torch.manual_seed(0)
    model = GlocalCLIP(**TINY)
    batch = next(iter(datamodule.train_dataloader()))
    assert batch.gt_mask is None
    batch.image = model.pre_processor.transform(batch.image)
    losses = model.compute_losses(model.model.encode_image(batch.image), batch.gt_label, batch.gt_mask)
    assert losses["loss_local"] == 0
    assert losses["loss_global"] > 0
