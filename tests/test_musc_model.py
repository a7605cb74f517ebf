"""MuSc as an Anomalib model: one set per dataloader, scored once, each batch its share; small sets; labels."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from anomalib.data import MVTecAD
from anomalib.engine import Engine
from lightning.pytorch import Callback
from PIL import Image

from anomalib_glocalclip import MuSc
from anomalib_glocalclip.components import ExportRefusedError
from anomalib_glocalclip.musc.lightning_model import SetTooSmallError
from anomalib_glocalclip.musc.rscin import rscin
from anomalib_glocalclip.musc.torch_model import SCORING_RESERVE, MuScModel, outlier_threshold, split_set
from anomalib_glocalclip.testing import TINY_CLIP_CONFIG, generate_mvtec_ad, make_image

TINY = {"backbone": str(TINY_CLIP_CONFIG), "pretrained": None, "image_size": 64, "feature_layers": (3, 6, 9, 12)}


def _musc(**kwargs: object) -> MuSc:
    return MuSc(**{**TINY, "visualizer": False, **kwargs})


def _count_encodes(model: MuSc) -> list[int]:
    """Record the images of every backbone pass of ``model``."""
    calls: list[int] = []
    encode = model.model.encode

    def counting(images: torch.Tensor):
        calls.append(len(images))
        return encode(images)

    model.model.encode = counting
    return calls


class Outputs(Callback):
    """Collect the post-processed test batches by image path."""

    def __init__(self) -> None:
        self.by_path: dict[str, tuple[float, torch.Tensor]] = {}

    def on_test_batch_end(self, trainer, pl_module, outputs, *args) -> None:
        for path, score, anomaly_map in zip(outputs.image_path, outputs.pred_score, outputs.anomaly_map, strict=True):
            self.by_path[str(path)] = (float(score), anomaly_map.cpu())


def _product(seed: int, anomalous: bool = False) -> np.ndarray:
    """One generated ``bottle`` image ``[64, 64, 3]`` uint8."""
    return make_image(np.random.default_rng(seed), 64, "bottle", anomalous=anomalous, defect="scratch")[0]


def _write_folder(folder: Path, count: int, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        Image.fromarray(_product(seed + index, anomalous=index % 4 == 3)).save(folder / f"{index:03d}.png")
    return folder


def _concatenated(predictions: list) -> tuple[torch.Tensor, torch.Tensor]:
    """``pred_score`` ``[N]`` and ``anomaly_map`` ``[N, H, W]`` of all predicted batches."""
    return (torch.cat([batch.pred_score for batch in predictions]),
            torch.cat([batch.anomaly_map for batch in predictions]))


@pytest.fixture(scope="module")
def mvtec(tmp_path_factory) -> Path:
    return generate_mvtec_ad(tmp_path_factory.mktemp("musc") / "MVTecAD", categories=("bottle",), n_train=3,
                             n_test_good=5, n_test_bad=2, defects=("scratch", "crack"))


@pytest.mark.integration
def test_validation_then_test_encodes_once_and_predict_agrees_with_test(mvtec: Path, tmp_path: Path) -> None:
    model = _musc()
    calls = _count_encodes(model)
    outputs = Outputs()
    engine = Engine(default_root_dir=tmp_path, accelerator="cpu", devices=1, logger=False, callbacks=[outputs])
    datamodule = MVTecAD(root=mvtec, category="bottle", num_workers=0, eval_batch_size=4)
    metrics = engine.test(model, datamodule=datamodule)
    assert sum(calls) == 9  # validation and test of the same 9 files: one pass over them
    assert metrics[0]["image_AUROC"] >= 0  # the evaluator ran
    assert model.scored_sets == []  # dropped at the end of the test
    predictions = engine.predict(model, datamodule=datamodule)
    assert sum(calls) == 18  # the predict run's set (validated, then predicted) encoded once more
    predicted = {
        str(path): (score, anomaly_map) for batch in predictions
        for path, score, anomaly_map in zip(batch.image_path, batch.pred_score, batch.anomaly_map, strict=True)
    }
    assert len(predicted) == 9
    assert predicted.keys() == outputs.by_path.keys()
    for path, (score, anomaly_map) in predicted.items():
        assert float(score) == pytest.approx(outputs.by_path[path][0], rel=1e-6)
        torch.testing.assert_close(anomaly_map, outputs.by_path[path][1])
        assert torch.isfinite(anomaly_map).all()


@pytest.mark.integration
def test_predict_on_a_folder_with_an_unreadable_file_scores_the_readable_set_and_names_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The set is the readable images: their scores are those of the same images without the broken file."""
    clean = _write_folder(tmp_path / "clean", 5)
    folder = _write_folder(tmp_path / "images", 5)
    (folder / "broken.png").write_bytes(b"not an image")
    model = _musc()
    calls = _count_encodes(model)
    engine = Engine(default_root_dir=tmp_path / "run", accelerator="cpu", devices=1, logger=False)
    with caplog.at_level(logging.INFO):
        predictions = engine.predict(model, data_path=folder)
    assert sum(calls) == 5  # the set: the readable images, each encoded once
    assert f"1 image(s) of {folder} left out of predict" in caplog.text
    assert "MuSc scores them as a set without these" in caplog.text
    assert f"Cannot read image {folder / 'broken.png'}" in caplog.text
    assert "MuSc: scored a set of 5 images" in caplog.text
    (table,) = (tmp_path / "run").rglob("predictions.csv")
    with table.open(newline="", encoding="utf-8") as file:
        statuses = {Path(row["image_path"]).name: row["status"] for row in csv.DictReader(file)}
    assert statuses.pop("broken.png").startswith(f"left out: Cannot read image {folder / 'broken.png'}")
    assert statuses == {f"{index:03d}.png": "ok" for index in range(5)}
    scores = {Path(path).name: float(score) for batch in predictions
              for path, score in zip(batch.image_path, batch.pred_score, strict=True)}
    clean_scores = {Path(path).name: float(score) for batch in engine.predict(model, data_path=clean)
                    for path, score in zip(batch.image_path, batch.pred_score, strict=True)}
    assert len(scores) == 5
    assert scores == pytest.approx(clean_scores, rel=1e-6)


@pytest.mark.integration
def test_predict_on_a_folder_of_one_readable_image_is_refused_by_name(tmp_path: Path) -> None:
    folder = _write_folder(tmp_path / "images", 1)
    (folder / "broken.png").write_bytes(b"not an image")
    engine = Engine(default_root_dir=tmp_path / "run", accelerator="cpu", devices=1, logger=False)
    with pytest.raises(SetTooSmallError, match=r"000\.png.*reference_images"):
        engine.predict(_musc(), data_path=folder)


@pytest.mark.integration
def test_a_single_image_is_refused_by_name_with_the_fix(tmp_path: Path) -> None:
    folder = _write_folder(tmp_path / "one", 1)
    engine = Engine(default_root_dir=tmp_path / "run", accelerator="cpu", devices=1, logger=False)
    with pytest.raises(SetTooSmallError, match=r"000\.png.*reference_images"):
        engine.predict(_musc(), data_path=folder)


@pytest.mark.integration
def test_one_image_with_references_is_scored_without_rscin(tmp_path: Path, caplog) -> None:
    references = _write_folder(tmp_path / "good", 3, seed=10)
    folder = _write_folder(tmp_path / "one", 1)
    model = _musc(reference_images=str(references))
    engine = Engine(default_root_dir=tmp_path / "run", accelerator="cpu", devices=1, logger=False)
    with caplog.at_level(logging.INFO):
        scores, maps = _concatenated(engine.predict(model, data_path=folder))
    assert "RsCIN skipped" in caplog.text
    assert torch.isfinite(scores).all()
    assert torch.isfinite(maps).all()
    # the score is the map's maximum (RsCIN off), on the map's scale
    assert float(scores[0]) == pytest.approx(float(maps.amax()), rel=1e-6)
    assert model.learning_type.value == "few_shot"


@pytest.mark.integration
def test_two_images_are_scored_with_k_clamped(tmp_path: Path, caplog) -> None:
    folder = _write_folder(tmp_path / "two", 2)
    engine = Engine(default_root_dir=tmp_path / "run", accelerator="cpu", devices=1, logger=False)
    with caplog.at_level(logging.WARNING):
        scores, maps = _concatenated(engine.predict(_musc(), data_path=folder))
    assert "clamped to (1, 2, 2)" in caplog.text
    assert "small" in caplog.text
    assert torch.isfinite(maps).all()
    assert 0 <= min(scores.tolist()) < max(scores.tolist()) <= 1  # RsCIN of the two min-max scores


@pytest.fixture(scope="module")
def tiny_musc() -> MuScModel:
    return MuScModel(**TINY)


@pytest.fixture(scope="module")
def product_images() -> torch.Tensor:
    images = [torch.from_numpy(_product(index, anomalous=index == 3)).float() for index in range(7)]
    return (torch.stack(images).permute(0, 3, 1, 2) / 255 - 0.45) / 0.27


def test_permuting_the_set_permutes_maps_and_scores(tiny_musc: MuScModel, product_images: torch.Tensor) -> None:
    encoded = tiny_musc.encode(product_images)
    order = torch.tensor([4, 2, 6, 0, 1, 5, 3])
    scores, permuted = tiny_musc.score_set(encoded), tiny_musc.score_set(encoded.select(order))
    torch.testing.assert_close(permuted.patch_maps, scores.patch_maps[order])
    torch.testing.assert_close(permuted.pred_scores, scores.pred_scores[order])
    forward = tiny_musc(product_images)
    torch.testing.assert_close(forward.pred_score, scores.pred_scores.float())


def test_max_set_size_scores_random_subsets_apart_and_rscin_over_all(tiny_musc, product_images, caplog) -> None:
    encoded = tiny_musc.encode(product_images)
    subsets = split_set(7, 3, seed=5)
    assert sorted(torch.cat(subsets).tolist()) == list(range(7))
    assert [len(s) for s in subsets] == [3, 2, 2]
    assert [s.tolist() for s in split_set(7, 3, seed=5)] == [s.tolist() for s in subsets]
    assert [len(s) for s in split_set(3, 2, seed=0)] == [3]  # never a subset of one image
    assert [len(s) for s in split_set(5, 2, seed=0)] == [3, 2]
    with caplog.at_level(logging.INFO):
        split = tiny_musc.score_set(encoded, max_set_size=3, split_seed=5)
    assert "3 random subsets (seed 5)" in caplog.text
    for subset in subsets:
        torch.testing.assert_close(split.patch_maps[subset], tiny_musc.score_set(encoded.select(subset)).patch_maps)
    # RsCIN over the union of the subsets
    torch.testing.assert_close(split.pred_scores, rscin(split.image_scores, encoded.class_features, (1, 2, 3)))


def test_outlier_threshold_is_the_median_plus_three_scaled_mads() -> None:
    scores = torch.tensor([1.0, 2.0, 3.0, 4.0, 100.0], dtype=torch.float64)
    assert outlier_threshold(scores) == pytest.approx(3.0 + 3 * 1.4826 * 1.0)
    assert outlier_threshold(torch.full((4,), 0.5, dtype=torch.float64)) == 0.5  # nothing is above it


def test_export_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ExportRefusedError, match=r"MuSc cannot be exported.*set-level"):
        _musc().to_torch(export_root=tmp_path)


def test_bad_settings_are_refused_when_built() -> None:
    with pytest.raises(ValueError, match="bf16"):
        MuScModel(**TINY, precision="bf16")
    with pytest.raises(ValueError, match="odd"):
        MuScModel(**{**TINY, "r_list": (1, 2)})
    with pytest.raises(ValueError, match="interval"):
        MuScModel(**{**TINY, "interval": (-0.1, 0.3)})
    with pytest.raises(ValueError, match="feature_layers"):
        MuScModel(**{**TINY, "feature_layers": (0, 25)})
    with pytest.raises(ValueError, match="max_set_size"):
        _musc(max_set_size=1)


def test_the_default_post_processor_keeps_scores_and_maps_as_they_are() -> None:
    post_processor = _musc().post_processor
    assert not post_processor.enable_normalization
    assert not post_processor.enable_thresholding




@pytest.mark.parametrize(("config", "rscin_k", "datamodule"),
                         [("musc_mvtec.yaml", (1, 2, 3), "MVTecAD"), ("musc_visa.yaml", (1, 8, 9), "Visa")])
def test_shipped_presets_build_through_the_cli_parser(tmp_path: Path, config: str, rscin_k, datamodule: str) -> None:
    overrides = {"model.backbone": str(TINY_CLIP_CONFIG), "model.pretrained": "null", "model.image_size": 64,
                 "data.root": str(tmp_path), "trainer.accelerator": "cpu", "default_root_dir": str(tmp_path / "r")}
    _, model, data = Engine.from_config(Path(__file__).resolve().parents[1] / "configs" / config, **overrides)
    assert isinstance(model, MuSc)
    assert model.model.rscin_k == rscin_k
    assert model.model.feature_layers == (6, 12, 18, 24)
    assert model.model.interval == (0.0, 0.3)
    assert model.pre_processor.transform.transforms[0].image_filter == "bicubic"  # the reference's PIL squash
    assert type(data).__name__ == datamodule


@pytest.mark.integration
def test_labels_and_masks_compare_distances_with_the_label_threshold(tmp_path: Path) -> None:
    folder = _write_folder(tmp_path / "four", 4)
    engine = Engine(default_root_dir=tmp_path / "run", accelerator="cpu", devices=1, logger=False)
    _, maps = _concatenated(engine.predict(_musc(), data_path=folder))
    maxima = maps.amax((-2, -1)).sort().values
    threshold = float(maxima[1:3].mean())  # halfway between the images' maxima
    predictions = engine.predict(_musc(label_threshold=threshold), data_path=folder)
    labels = torch.cat([batch.pred_label for batch in predictions])
    masks = torch.cat([batch.pred_mask for batch in predictions])
    torch.testing.assert_close(labels, maps.amax((-2, -1)) > threshold)
    torch.testing.assert_close(masks, maps > threshold)
    assert int(labels.sum()) == 2


@pytest.mark.integration
def test_few_shot_references_come_from_the_train_split_and_are_not_scored(mvtec: Path, tmp_path: Path) -> None:
    model = _musc(few_shot=2)
    outputs = Outputs()
    engine = Engine(default_root_dir=tmp_path, accelerator="cpu", devices=1, logger=False, callbacks=[outputs])
    engine.test(model, datamodule=MVTecAD(root=mvtec, category="bottle", num_workers=0, eval_batch_size=4))
    assert len(model.reference_paths) == 2
    assert all("/train/good/" in path for path in model.reference_paths)
    assert len(outputs.by_path) == 9  # the test images only
    assert not set(model.reference_paths) & set(outputs.by_path)


def test_tokens_go_to_the_host_when_the_device_would_keep_too_little_room_for_scoring(monkeypatch) -> None:
    model = MuScModel(**TINY, max_elements=1000)  # reserve: SCORING_RESERVE x 1000 fp32 values = 16,000 bytes
    reserve = SCORING_RESERVE * 1000 * 4
    free = {"bytes": reserve + 500}
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda _device: (free["bytes"], 10**12))
    cuda = torch.device("cuda")
    assert not model.keeps_tokens_on_host(500, cuda)  # exactly the reserve left: stays on the device
    assert model.keeps_tokens_on_host(501, cuda)
    free["bytes"] = 10**12
    assert not model.keeps_tokens_on_host(10**6, cuda)
    forced_on, forced_off = MuScModel(**TINY, tokens_on_host=True), MuScModel(**TINY, tokens_on_host=False)
    assert forced_on.keeps_tokens_on_host(1, cuda)
    assert not forced_off.keeps_tokens_on_host(10**15, cuda)

