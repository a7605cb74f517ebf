"""The plugin commands' one engine path (``evaluation/engine.py``): when it tests in one pass, and the heatmaps."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from anomalib.data import MVTecAD
from anomalib.post_processing import PostProcessor

from anomalib_glocalclip.components import FittedThresholdPostProcessor
from anomalib_glocalclip.components.visualizer import PluginImageVisualizer
from anomalib_glocalclip.evaluation.engine import evaluation_engine, runs_in_one_pass


def _model(normalize: bool = False, post_processor: object = None) -> SimpleNamespace:
    """What the engine path reads of a model: its post-processor, and the visualizer it may replace."""
    post_processor = post_processor or FittedThresholdPostProcessor(enable_normalization=normalize)
    return SimpleNamespace(post_processor=post_processor, visualizer="own")


@pytest.mark.parametrize(
    ("normalize", "split", "post_processor", "one_pass"),
    [
        (False, "same_as_test", None, True),
        (True, "same_as_test", None, False),  # normalised: the test pass cannot fit the ranges the metrics see
        (False, "from_test", None, False),  # validation on other files
        (False, "same_as_test", FittedThresholdPostProcessor(enable_thresholding=False), False),
        (False, "same_as_test", PostProcessor(), False),  # Anomalib's labels raw scores at 0.5, not at the fit
        (False, "same_as_test", object(), False),  # not Anomalib's post-processor
    ],
)
def test_one_pass_only_where_the_test_pass_can_fit_the_thresholds(
    normalize: bool, split: str, post_processor: object, one_pass: bool, tmp_path: Path
) -> None:
    datamodule = MVTecAD(root=tmp_path, category="bottle", val_split_mode=split)
    model = _model(normalize, post_processor)
    if isinstance(post_processor, PostProcessor):
        post_processor.enable_normalization = normalize
    assert runs_in_one_pass(model, datamodule) is one_pass


def test_heatmaps_of_the_one_pass_path_come_from_the_background_writer(tmp_path: Path) -> None:
    model = _model(normalize=False)
    evaluation_engine(tmp_path, model, MVTecAD(root=tmp_path, category="bottle"), accelerator="cpu",
                      heatmap_dir=tmp_path / "maps")
    assert model.visualizer is None  # it would draw before the thresholds are fitted


def test_two_pass_path_draws_with_the_visualizer(tmp_path: Path) -> None:
    datamodule = MVTecAD(root=tmp_path, category="bottle")
    model = _model(normalize=True)
    evaluation_engine(tmp_path, model, datamodule, accelerator="cpu", heatmap_dir=tmp_path / "maps")
    assert isinstance(model.visualizer, PluginImageVisualizer)
    assert model.visualizer.output_dir == tmp_path / "maps"
    kept = _model(normalize=True)
    evaluation_engine(tmp_path, kept, datamodule, accelerator="cpu")
    assert kept.visualizer == "own"  # no heatmap folder asked: the model's own visualizer stays


def test_the_sweep_gives_anomalibs_post_processor_the_fitted_threshold_one() -> None:
    """A model with Anomalib's own post-processor (e.g. WinCLIP's) would label raw scores at 0.5 in the sweep."""
    from anomalib import LearningType

    from anomalib_glocalclip.evaluation import prepare_model, sweep_evaluator

    evaluator = sweep_evaluator()
    model = SimpleNamespace(learning_type=LearningType.ZERO_SHOT, evaluator=evaluator, visualizer=None,
                            post_processor=PostProcessor(image_sensitivity=0.3))
    prepare_model(model, evaluator, None)
    assert type(model.post_processor) is FittedThresholdPostProcessor
    assert model.post_processor.image_sensitivity == 0.3  # its settings kept
    assert not model.post_processor.enable_normalization  # raw scores, as the sweep's metrics
    own = FittedThresholdPostProcessor()
    model.post_processor = own
    assert prepare_model(model, evaluator, None).post_processor is own
