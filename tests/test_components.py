"""``ZeroShotCLIPMixin``: both models get the same pre-processor, post-processor, evaluator and callbacks."""

from __future__ import annotations

import logging

import pytest
import torch
from anomalib import LearningType
from anomalib.data import ImageBatch, InferenceBatch
from anomalib.post_processing import PostProcessor
from torchvision.transforms.v2 import InterpolationMode, Normalize, Resize

from anomalib_glocalclip import AnoCLIP, GlocalCLIP
from anomalib_glocalclip.backbone import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from anomalib_glocalclip.components import (
    ExportRefusedError,
    FittedThresholdPostProcessor,
    PredictionTable,
    ZeroShotCLIPMixin,
    zero_shot_evaluator,
)
from anomalib_glocalclip.data.reader_check import ReaderCheck
from anomalib_glocalclip.glocalclip.feature_cache import FeatureCacheCallback


@pytest.fixture(scope="module")
def models(tiny_config) -> tuple[GlocalCLIP, AnoCLIP]:
    tiny = {"backbone": str(tiny_config), "pretrained": None, "image_size": 64}
    return GlocalCLIP(**tiny, cache_features=False), AnoCLIP(**tiny)


def test_both_models_share_the_base(models) -> None:
    for model in models:
        assert isinstance(model, ZeroShotCLIPMixin)
        resize, normalize = model.pre_processor.transform.transforms
        assert isinstance(resize, Resize)
        assert list(resize.size) == [64, 64]
        assert resize.interpolation == InterpolationMode.BICUBIC
        assert isinstance(normalize, Normalize)
        assert list(normalize.mean) == list(OPENAI_CLIP_MEAN)
        assert list(normalize.std) == list(OPENAI_CLIP_STD)
        assert type(model.post_processor) is FittedThresholdPostProcessor
        names = [metric.name for metric in model.evaluator.test_metrics]
        assert names == [metric.name for metric in zero_shot_evaluator().test_metrics]
        callbacks = model.configure_callbacks()
        assert [type(c) for c in callbacks] == [ReaderCheck, type(model.pre_processor), FittedThresholdPostProcessor,
                                                type(model.evaluator), type(model.visualizer), PredictionTable]


def test_both_models_are_listed_by_anomalib() -> None:
    from anomalib.models import list_models

    assert {"GlocalCLIP", "AnoCLIP"} <= list_models(case="pascal")


def test_pre_processor_is_a_classmethod() -> None:
    resize = GlocalCLIP.configure_pre_processor((32, 48)).transform.transforms[0]
    assert list(resize.size) == [32, 48]
    assert list(AnoCLIP.configure_pre_processor().transform.transforms[0].size) == [224, 224]


def test_natural_thresholds(models) -> None:
    glocal, anoclip = models
    for model, pixel_threshold in ((glocal, 0.5 * len(glocal.model.feature_layers)), (anoclip, 0.5)):
        assert model.post_processor.image_threshold.item() == 0.5
        assert model.post_processor.pixel_threshold.item() == pixel_threshold
    assert anoclip.post_processor.pixel_max.item() == 1.0


def test_natural_thresholds_label_the_same_normalised_or_not(models) -> None:
    """Without validation data: anomalous above probability 0.5, pixels above half the map's scale (GlocalCLIP's 4)."""
    import copy

    glocal = models[0]
    scale = float(len(glocal.model.feature_layers))
    scores, maps = torch.tensor([0.2, 0.5, 0.7]), torch.linspace(0, scale, 16).reshape(1, 4, 4).repeat(3, 1, 1)
    for normalize in (False, True):
        post_processor = copy.deepcopy(glocal.post_processor)
        post_processor.enable_normalization = normalize
        labelled = post_processor(InferenceBatch(pred_score=scores, anomaly_map=maps))
        assert labelled.pred_label.tolist() == [False, False, True]
        assert torch.equal(labelled.pred_mask, maps > scale / 2)


@pytest.mark.parametrize("normalize", [False, True])
def test_labels_and_masks_use_the_fitted_thresholds(normalize: bool) -> None:
    """Thresholds fitted by validation (F1-optimal: 0.95, 0.35) label raw scores and maps, normalised or not."""
    post_processor = FittedThresholdPostProcessor(enable_normalization=normalize)
    scores = torch.tensor([0.2, 0.6, 0.9])
    maps = torch.tensor([[[0.1, 0.25], [0.35, 0.9]]]).repeat(3, 1, 1)
    post_processor.on_validation_batch_end(None, None, ImageBatch(  # what Lightning's validation loop calls
        image=torch.zeros(3, 3, 2, 2), pred_score=torch.tensor([0.1, 0.7, 0.95]), gt_label=torch.tensor([0, 0, 1]),
        anomaly_map=torch.tensor([[[0.1, 0.3], [0.35, 0.9]]]).repeat(3, 1, 1),
        gt_mask=torch.tensor([[[0, 0], [1, 1]]]).repeat(3, 1, 1).bool()))
    post_processor.on_validation_epoch_end(None, None)
    assert post_processor.image_threshold.item() == pytest.approx(0.95)  # the lowest score with F1 = 1
    assert post_processor.pixel_threshold.item() == pytest.approx(0.35)
    batch = ImageBatch(image=torch.zeros(3, 3, 2, 2), pred_score=scores, anomaly_map=maps)
    post_processor.post_process_batch(batch)
    inferred = post_processor(InferenceBatch(pred_score=scores, anomaly_map=maps))
    for labelled in (batch, inferred):
        assert labelled.pred_label.tolist() == [False, False, False]  # none above 0.95
        assert labelled.pred_mask[0].tolist() == [[False, False], [False, True]]  # above 0.35 only
    if not normalize:  # Anomalib's post-processor labels raw scores at 0.5 instead (its 1 - sensitivity)
        anomalib = PostProcessor(enable_normalization=False)
        anomalib.load_state_dict(post_processor.state_dict())
        assert anomalib(InferenceBatch(pred_score=scores, anomaly_map=maps)).pred_label.tolist() == [False, True, True]


def test_no_validation_data_warns(models, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert models[1].val_dataloader() == []
    assert "natural thresholds" in caplog.text


def test_no_natural_threshold_warning_after_validation_on_data(tiny_config, caplog: pytest.LogCaptureFixture) -> None:
    from anomalib.data import ImageBatch

    model = GlocalCLIP(backbone=str(tiny_config), pretrained=None, image_size=64)
    model.validation_step(ImageBatch(image=torch.rand(1, 3, 64, 64)))  # what engine.test's validation runs first
    with caplog.at_level(logging.INFO):
        assert model.val_dataloader() == []
    assert "natural thresholds" not in caplog.text
    assert "keeps the thresholds of its earlier validation" in caplog.text


def test_learning_types(models) -> None:
    assert models[0].learning_type == LearningType.ONE_CLASS  # learning prompts
    assert models[1].learning_type == LearningType.ZERO_SHOT


def test_feature_cache_callback_only_when_caching(tiny_config) -> None:
    tiny = {"backbone": str(tiny_config), "pretrained": None, "image_size": 64}
    assert isinstance(GlocalCLIP(**tiny).configure_callbacks()[-1], FeatureCacheCallback)
    custom = GlocalCLIP(**tiny, pre_processor=GlocalCLIP.configure_pre_processor((64, 64)))
    assert not any(isinstance(c, FeatureCacheCallback) for c in custom.configure_callbacks())


def test_export_guard(models, tmp_path, tiny_config) -> None:
    plus = AnoCLIP(backbone=str(tiny_config), pretrained=None, image_size=64, tta=True)
    assert plus.export_refusal() is not None
    with pytest.raises(ExportRefusedError) as refused:
        plus.to_torch(tmp_path)
    assert str(refused.value) == plus.export_refusal()
    assert models[1].export_refusal() is None
    assert not list(tmp_path.iterdir())
    assert torch.is_tensor(models[1].post_processor.image_min)


@pytest.mark.parametrize("model_class", [GlocalCLIP, AnoCLIP])
def test_compile_option_reaches_the_backbone(tiny_config, model_class) -> None:
    kwargs = {"backbone": str(tiny_config), "pretrained": None, "image_size": 64}
    assert not model_class(**kwargs).model.backbone.use_compile
    assert model_class(**kwargs, compile=True).model.backbone.use_compile
