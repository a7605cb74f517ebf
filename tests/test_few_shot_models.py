"""Few-shot GlocalCLIP and AnoCLIP: references from a train split or a folder, scores, checkpoints, export."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from anomalib import LearningType
from anomalib.data import MVTecAD
from anomalib.deploy import ExportType
from anomalib.engine import Engine
from PIL import Image

from anomalib_glocalclip import AnoCLIP, GlocalCLIP
from anomalib_glocalclip.components.few_shot import REFERENCE_PATHS_KEY
from anomalib_glocalclip.data import ImageReadError
from anomalib_glocalclip.testing import TINY_CLIP_CONFIG, generate_mvtec_ad
from deploy_helpers import anoclip_args, glocalclip_args, write_shallow_clip_config

TINY = {"backbone": str(TINY_CLIP_CONFIG), "pretrained": None, "image_size": 64}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A generated MVTec AD ``bottle`` with 6 normal train images and a ``square`` defect, and random prompts."""
    root = tmp_path_factory.mktemp("few_shot")
    data = generate_mvtec_ad(root / "mvtec", categories=("bottle",), n_train=6, n_test_good=3, n_test_bad=6,
                             defects=("square",), seed=1)
    torch.manual_seed(0)
    prompts = GlocalCLIP(**TINY, sigma=1.0).save_prompts(root / "prompts.pt")
    return {"root": root, "data": data, "prompts": prompts, "shallow": write_shallow_clip_config(root)}


def datamodule(workspace: dict[str, Path]) -> MVTecAD:
    return MVTecAD(root=workspace["data"], category="bottle", num_workers=0, eval_batch_size=32)


def engine(root: Path) -> Engine:
    return Engine(accelerator="cpu", logger=False, default_root_dir=root, enable_progress_bar=False)


def build(name: str, workspace: dict[str, Path], **few_shot: Any) -> GlocalCLIP | AnoCLIP:
    """The tiny model, zero-shot unless ``few_shot`` arguments are given.

    GlocalCLIP runs its random prompts at temperature 1: at its usual 0.07 they give saturated probabilities of
    pure noise, which no method can rescue; at 1 they are uninformative, as AnoCLIP's (logit scale 1).
    """
    if name == "GlocalCLIP":
        return GlocalCLIP(**TINY, sigma=1.0, temperature=1.0, prompt_weights=str(workspace["prompts"]), **few_shot)
    model = AnoCLIP(**TINY, class_name="bottle", image_score_views="none", **few_shot)
    model.setup("test")  # encodes the prompts (Engine runs do it themselves)
    return model


@pytest.mark.parametrize("name", ["GlocalCLIP", "AnoCLIP"])
def test_few_shot_raises_pixel_auroc_where_zero_shot_fails(name: str, workspace: dict[str, Path]) -> None:
    """The random CLIP's prompts know nothing of the defect; 3 normal train images show what is normal."""
    zero = engine(workspace["root"] / "zero").test(build(name, workspace), datamodule=datamodule(workspace))[0]
    model = build(name, workspace, few_shot=3)
    assert model.learning_type == LearningType.FEW_SHOT
    few = engine(workspace["root"] / "few").test(model, datamodule=datamodule(workspace))[0]
    assert zero["pixel_AUROC"] < 0.7, zero
    assert few["pixel_AUROC"] > 0.85, few
    assert few["pixel_AUROC"] > zero["pixel_AUROC"] + 0.2, (zero, few)
    assert few["image_AUROC"] > zero["image_AUROC"], (zero, few)
    # Three normal images of the train split were taken, and recorded.
    assert len(model.reference_paths) == 3
    assert all("/train/good/" in path for path in model.reference_paths)
    assert model.model.reference_bank.num_patches == 3 * model.model.backbone.grid_size[0] ** 2


@pytest.mark.parametrize("name", ["GlocalCLIP", "AnoCLIP"])
def test_empty_bank_or_zero_weight_gives_the_zero_shot_outputs(name: str, workspace: dict[str, Path]) -> None:
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        zero_shot = build(name, workspace).eval().model(images)
        # k > 0 but nothing filled yet: the bank is empty, the zero-shot path is taken as is.
        unfilled = build(name, workspace, few_shot=4).eval().model(images)
        weightless = build(name, workspace, few_shot=4, few_shot_weight=0.0).eval()
        weightless.model.reference_bank.add(weightless.model.reference_features(images[:1]))
        ignored = weightless.model(images)
    for output in (unfilled, ignored):
        assert torch.equal(output.anomaly_map, zero_shot.anomaly_map)
        assert torch.equal(output.pred_score, zero_shot.pred_score)


@pytest.mark.parametrize("name", ["GlocalCLIP", "AnoCLIP"])
def test_combined_scores_against_an_explicit_computation(name: str, workspace: dict[str, Path]) -> None:
    """Images that are their own references: distance 0, so map and score are (1 - w) x the zero-shot ones."""
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    model = build(name, workspace, few_shot=2, few_shot_weight=0.25).eval()
    with torch.no_grad():
        zero_shot = build(name, workspace).eval().model(images)
        model.model.reference_bank.add(model.model.reference_features(images))
        few_shot = model.model(images)
    # fp32 cosine of a vector with itself is 1 within rounding: the few-shot terms are ~1e-7.
    torch.testing.assert_close(few_shot.anomaly_map, 0.75 * zero_shot.anomaly_map, atol=1e-5, rtol=0)
    torch.testing.assert_close(few_shot.pred_score, 0.75 * zero_shot.pred_score, atol=1e-5, rtol=0)


def test_one_reference_far_from_the_test_patches_shows_in_the_map(workspace: dict[str, Path]) -> None:
    """AnoCLIP's few-shot map equals its own patch map of ``(1 - max cos) / 2``, computed here by hand."""
    references = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    model = build("AnoCLIP", workspace, few_shot=1, few_shot_weight=1.0).eval()
    with torch.no_grad():
        bank = model.model.reference_features(references)[0, 0]  # [N, E]
        tokens = model.model.reference_features(images)[0]  # [B, N, E]
        model.model.reference_bank.add(bank[None, None])
        output = model.model(images)
    cosine = torch.nn.functional.normalize(tokens, dim=-1) @ torch.nn.functional.normalize(bank, dim=-1).t()
    expected_patches = (1 - cosine.amax(dim=-1)) / 2  # [B, N]
    from anomalib_glocalclip.anoclip.scoring import patch_anomaly_map

    expected = patch_anomaly_map(expected_patches, model.model.backbone.grid_size, (64, 64))
    torch.testing.assert_close(output.anomaly_map, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(output.pred_score, expected.amax(dim=(-2, -1)), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["GlocalCLIP", "AnoCLIP"])
def test_bank_holds_the_features_of_the_chosen_images_read_as_test_images(name: str, tmp_path: Path) -> None:
    """The bank is the model's patch features of its chosen train images, each read by the datamodule's dataset
    (as test images are) and pre-processed by the model's own transform, L2-normalised, in the chosen order.

    The files are 96x80: test images are resized to the model's 64x64 by the dataset (Anomalib sets its
    augmentations from the model's transform) and then normalised by the model's pre-processor.
    """
    root = generate_mvtec_ad(tmp_path / "mvtec", categories=("bottle",), n_train=5, n_test_good=1, n_test_bad=1,
                             image_size=(96, 80), seed=3)
    data = MVTecAD(root=root, category="bottle", num_workers=0)
    torch.manual_seed(0)
    model = build(name, {"prompts": GlocalCLIP(**TINY).save_prompts(tmp_path / "prompts.pt")}, few_shot=2)
    engine(tmp_path / "run").validate(model, datamodule=data, verbose=False)

    assert len(model.reference_paths) == 2
    dataset = data.train_data
    by_path = {str(dataset[index].image_path): dataset[index].image for index in range(len(dataset))}
    images = [by_path[path] for path in model.reference_paths]
    assert all(Image.open(path).size == (80, 96) for path in model.reference_paths)
    with torch.no_grad():
        inputs = torch.stack([model.pre_processor.transform(image) for image in images])
        features = model.model.reference_features(inputs)  # [L, K, N, E]
    expected = torch.nn.functional.normalize(features.flatten(1, 2), dim=-1)
    bank = model.model.reference_bank.features
    assert bank.shape == expected.shape
    torch.testing.assert_close(bank.float(), expected, atol=1e-5, rtol=1e-5)


def test_glocalclip_few_shot_map_follows_the_zero_shot_maps_range(workspace: dict[str, Path]) -> None:
    """In reference mode the map sums ``len(feature_layers)`` copies of the last layer's probabilities, so its
    range is 4 with four feature layers and 1 with one: the few-shot map is scaled by the same factor, and the
    combined map of the four-layer model is exactly 4x the one-layer model's. The image score is not scaled.
    """
    references = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    outputs = {}
    for layers in [(24,), (6, 12, 18, 24)]:
        model = build("GlocalCLIP", workspace, few_shot=1, few_shot_weight=0.5, feature_layers=layers).eval()
        with torch.no_grad():
            zero_shot = model.model(images)
            model.model.reference_bank.add(model.model.reference_features(references))
            outputs[len(layers)] = (zero_shot, model.model(images))
    (zero_1, few_1), (zero_4, few_4) = outputs[1], outputs[4]
    torch.testing.assert_close(zero_4.anomaly_map, 4 * zero_1.anomaly_map, atol=1e-5, rtol=1e-5)
    # The few-shot half adds something (references far from the test patches) to the halved zero-shot map ...
    added_1 = few_1.anomaly_map - 0.5 * zero_1.anomaly_map
    added_4 = few_4.anomaly_map - 0.5 * zero_4.anomaly_map
    assert added_1.min() > 0.01, added_1.min()
    # ... and 4x as much where the zero-shot map's range is 4x.
    torch.testing.assert_close(added_4, 4 * added_1, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(few_4.anomaly_map, 4 * few_1.anomaly_map, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(few_4.pred_score, few_1.pred_score, atol=1e-6, rtol=0)


def test_seeds_choose_the_same_references_and_others_differ(workspace: dict[str, Path], tmp_path: Path) -> None:
    def references(seed: int) -> list[str]:
        model = build("AnoCLIP", workspace, few_shot=2, few_shot_seed=seed)
        engine(tmp_path / str(seed)).validate(model, datamodule=datamodule(workspace), verbose=False)
        return model.reference_paths

    first = references(0)
    assert first == references(0)
    assert any(references(seed) != first for seed in (1, 2, 3))


def test_reference_folder_is_used_and_logged(workspace: dict[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    folder = workspace["data"] / "bottle" / "train" / "good"
    model = build("GlocalCLIP", workspace, reference_images=str(folder))  # few_shot 0: the whole folder
    assert model.learning_type == LearningType.FEW_SHOT
    with caplog.at_level(logging.INFO):
        model.prepare_references()
    assert sorted(model.reference_paths) == sorted(str(path) for path in folder.glob("*.png"))
    assert len(model.reference_paths) == 6
    assert str(folder / "000.png") in caplog.text


def make_bad_folder(kind: str, root: Path) -> Path:
    folder = root / kind
    if kind == "missing":
        return folder
    folder.mkdir()
    if kind == "corrupt":
        Image.new("RGB", (16, 16)).save(folder / "good.png")
        (folder / "broken.png").write_bytes(b"not a png")
    return folder


@pytest.mark.parametrize(("kind", "error"), [("missing", FileNotFoundError), ("empty", ValueError),
                                             ("corrupt", ImageReadError)])
@pytest.mark.parametrize("model_class", [GlocalCLIP, AnoCLIP])
def test_bad_reference_folder_names_the_path(
    kind: str, error: type[Exception], model_class: type, workspace: dict[str, Path], tmp_path: Path
) -> None:
    folder = make_bad_folder(kind, tmp_path)
    extra = {"prompt_weights": str(workspace["prompts"])} if model_class is GlocalCLIP else {}
    model = model_class(**TINY, reference_images=str(folder), few_shot=2, **extra)
    with pytest.raises(error, match="broken.png" if kind == "corrupt" else str(folder)):
        model.prepare_references()


def test_few_shot_without_datamodule_or_folder_says_what_to_pass(workspace: dict[str, Path]) -> None:
    model = build("AnoCLIP", workspace, few_shot=2)
    with pytest.raises(ValueError, match="reference_images"):
        model.prepare_references()


@pytest.mark.parametrize("arguments", [{"few_shot": -1}, {"few_shot_weight": 1.5}, {"reference_images": " "}])
def test_bad_few_shot_arguments_are_refused(arguments: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"few_shot|reference_images"):
        AnoCLIP(**TINY, **arguments)


def test_glocalclip_learning_prompts_needs_a_reference_folder() -> None:
    with pytest.raises(ValueError, match="reference_images"):
        GlocalCLIP(**TINY, few_shot=2)
    learning = GlocalCLIP(**TINY, few_shot=2, reference_images="./good")
    assert learning.learning_type == LearningType.ONE_CLASS
    assert learning.configure_optimizers() is not None


def test_checkpoint_carries_bank_and_paths_and_is_not_refilled(workspace: dict[str, Path], tmp_path: Path) -> None:
    model = build("GlocalCLIP", workspace, few_shot=2)
    run = engine(tmp_path / "run")
    run.validate(model, datamodule=datamodule(workspace), verbose=False)
    path = tmp_path / "few_shot.ckpt"
    run.trainer.save_checkpoint(path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    assert checkpoint[REFERENCE_PATHS_KEY] == model.reference_paths

    # A fresh model asking for other references: the checkpoint's bank is kept, not refilled.
    loaded = build("GlocalCLIP", workspace, few_shot=4, few_shot_seed=5)
    loaded.load_state_dict(checkpoint["state_dict"])
    loaded.on_load_checkpoint(checkpoint)
    loaded.prepare_references()
    assert torch.equal(loaded.model.reference_bank.features, model.model.reference_bank.features)
    assert loaded.reference_paths == model.reference_paths
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval().model(images).anomaly_map, model.eval().model(images).anomaly_map)


@pytest.mark.parametrize("name", ["GlocalCLIP", "AnoCLIP"])
def test_exports_carry_the_bank(name: str, workspace: dict[str, Path], tmp_path: Path) -> None:
    """Torch, ONNX and OpenVINO (at f32) exports of a filled few-shot model give its maps and scores."""
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    config = workspace["shallow"]
    model = (
        GlocalCLIP(**glocalclip_args(config), prompt_weights=str(shallow_prompts(workspace)), few_shot=2)
        if name == "GlocalCLIP"
        else AnoCLIP(**anoclip_args(config, class_name="bottle", image_score_views="none"), few_shot=2)
    )
    exporter = engine(tmp_path)
    exporter.validate(model, datamodule=datamodule(workspace), verbose=False)
    model.eval()
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = model(images)
    few_shot_part = model.model.reference_bank.features
    assert few_shot_part.numel() > 0

    onnx_path = exporter.export(model, ExportType.ONNX, export_root=tmp_path / "onnx")
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    outputs = dict(zip(names, session.run(None, {"input": images.numpy()}), strict=True))
    np.testing.assert_allclose(outputs["anomaly_map"], expected.anomaly_map.numpy(), atol=1e-4)
    np.testing.assert_allclose(outputs["pred_score"], expected.pred_score.numpy(), atol=1e-4)

    openvino = pytest.importorskip("openvino")
    xml_path = exporter.export(model, ExportType.OPENVINO, export_root=tmp_path / "openvino")
    compiled = openvino.Core().compile_model(str(xml_path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    result = compiled(images.numpy())
    by_name = {output.get_any_name(): result[output] for output in compiled.outputs}
    np.testing.assert_allclose(by_name["anomaly_map"], expected.anomaly_map.numpy(), atol=1e-4)
    np.testing.assert_allclose(by_name["pred_score"], expected.pred_score.numpy(), atol=1e-4)

    torch_path = exporter.export(model, ExportType.TORCH, export_root=tmp_path / "torch")
    exported = torch.load(torch_path, map_location="cpu", weights_only=False)["model"]
    assert torch.equal(exported.model.reference_bank.features, few_shot_part)
    with torch.no_grad():
        torch.testing.assert_close(exported(images).anomaly_map, expected.anomaly_map)


def shallow_prompts(workspace: dict[str, Path]) -> Path:
    """Random prompts for the shallow tiny CLIP (written once)."""
    path = workspace["root"] / "shallow_prompts.pt"
    if not path.exists():
        torch.manual_seed(0)
        GlocalCLIP(**glocalclip_args(workspace["shallow"])).save_prompts(path)
    return path


def test_evaluate_few_shot_gives_every_model_the_same_references(workspace: dict[str, Path], tmp_path: Path) -> None:
    from anomalib_glocalclip.evaluation import category_reference_seed, evaluate

    seen: dict[str, list[str]] = {}

    def factory(name: str):
        def build_for_sweep(evaluator: Any) -> GlocalCLIP | AnoCLIP:
            model = build(name, workspace)
            model.evaluator = evaluator
            original = model.prepare_references

            def record() -> None:
                original()
                seen[name] = model.reference_paths

            model.prepare_references = record
            return model

        return build_for_sweep

    for name in ("GlocalCLIP", "AnoCLIP"):
        table = evaluate(factory(name), "mvtec_ad", workspace["data"], output=tmp_path / name, accelerator="cpu",
                         num_workers=0, batch_size=16, progress=False, heatmaps=False, few_shot=2)
        assert not table.attrs["failed"]
        markdown = (tmp_path / name / "results.md").read_text()
        assert "(2-shot), few-shot on" in markdown
        assert "the same 2 seeded normal train images per category" in markdown
    assert len(seen["GlocalCLIP"]) == 2
    assert seen["GlocalCLIP"] == seen["AnoCLIP"]
    assert category_reference_seed("bottle", 111) == category_reference_seed("bottle", 111)
    assert category_reference_seed("bottle", 111) != category_reference_seed("cable", 111)


def test_evaluate_few_shot_refuses_other_models() -> None:
    from anomalib_glocalclip.evaluation import apply_few_shot

    other = torch.nn.Module()
    assert apply_few_shot(other, 0, "bottle", 1) is other
    with pytest.raises(TypeError, match="GlocalCLIP, AnoCLIP and MuSc"):
        apply_few_shot(other, 2, "bottle", 1)


@pytest.mark.parametrize(("config", "model_class"), [("glocalclip_few_shot.yaml", GlocalCLIP),
                                                     ("anoclip_few_shot.yaml", AnoCLIP)])
def test_few_shot_configs_name_existing_arguments(config: str, model_class: type) -> None:
    import inspect

    import yaml

    section = yaml.safe_load((Path(__file__).parents[1] / "configs" / config).read_text())["model"]
    assert section["class_path"].rpartition(".")[2] == model_class.__name__
    inspect.signature(model_class).bind(**section["init_args"])  # raises on an unknown argument
    assert section["init_args"]["few_shot"] == 4
