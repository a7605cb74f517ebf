"""AnoCLIP as an Anomalib module: class names, Engine runs, checkpoints, the shipped configs.

Its exports are checked with its full cycle in ``test_model_contract.py``; AnoCLIP+ refusing export is here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from anomalib import LearningType
from anomalib.deploy import ExportType
from anomalib.engine import Engine
from anomalib.models import list_models

from anomalib_glocalclip.anoclip import AnoCLIP
from anomalib_glocalclip.components import ExportRefusedError
from anomalib_glocalclip.testing import TINY_CLIP_CONFIG, generate_folder

CONFIGS = Path(__file__).resolve().parents[1] / "configs"



@pytest.fixture(scope="module")
def shallow_clip_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny CLIP with 2 vision layers and 1 text layer: what these tests check does not need depth."""
    config = json.loads(TINY_CLIP_CONFIG.read_text())
    config["vision_cfg"]["layers"] = 2
    config["text_cfg"]["layers"] = 1
    path = tmp_path_factory.mktemp("clip") / "shallow-clip.json"
    path.write_text(json.dumps(config))
    return path


@pytest.fixture
def tiny_anoclip(shallow_clip_config: Path) -> Callable[..., AnoCLIP]:
    """Factory of AnoCLIP modules on the shallow tiny CLIP at 64 px."""

    def build(**kwargs: Any) -> AnoCLIP:
        return AnoCLIP(backbone=str(shallow_clip_config), pretrained=None, image_size=64, **kwargs)

    return build


def fake_trainer(category: str | None) -> SimpleNamespace:
    """Just what ``AnoCLIP.setup`` reads from a trainer."""
    return SimpleNamespace(
        datamodule=SimpleNamespace(category=category),
        strategy=SimpleNamespace(root_device=torch.device("cpu")),
    )


def test_is_a_listed_zero_shot_model(tiny_anoclip: Callable[..., AnoCLIP]) -> None:
    assert "AnoCLIP" in list_models(case="pascal")
    model = tiny_anoclip()
    assert model.learning_type == LearningType.ZERO_SHOT
    assert model.trainer_arguments == {}
    assert tiny_anoclip(tta=True).trainer_arguments == {"inference_mode": False}
    assert model.configure_optimizers() is None
    assert model.input_size == (64, 64)
    with pytest.raises(ValueError, match="domain"):
        tiny_anoclip(domain="fabric")


@pytest.mark.parametrize(
    ("class_name", "category", "expected"),
    [
        ("transistor", "bottle", "transistor"),
        (None, "macaroni2", "macaroni"),
        (None, "metal_nut", "metal_nut"),
        (None, "", "object"),  # Folder datamodules have no category
        (None, None, "object"),
    ],
)
def test_class_name_resolution(
    tiny_anoclip: Callable[..., AnoCLIP], class_name: str | None, category: str | None, expected: str
) -> None:
    model = tiny_anoclip(class_name=class_name)
    model._trainer = fake_trainer(category)
    assert model._resolve_class_name() == expected


def test_setup_encodes_once_per_class_and_domain(
    tiny_anoclip: Callable[..., AnoCLIP], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tiny_anoclip()
    calls: list[tuple[str, str]] = []
    original = model.model.setup_prompts

    def counting_setup_prompts(class_name: str, domain: str) -> None:
        calls.append((class_name, domain))
        original(class_name, domain)

    monkeypatch.setattr(model.model, "setup_prompts", counting_setup_prompts)
    model._trainer = fake_trainer("carpet")
    model.setup("validate")
    model.setup("test")
    assert calls == [("carpet", "texture")]
    model._trainer = fake_trainer("grid")
    model.domain = "object"
    model.setup("test")
    assert calls == [("carpet", "texture"), ("grid", "object")]


@pytest.mark.parametrize("tta", [False, True], ids=["anoclip", "anoclip+"])
def test_engine_test_on_a_folder_dataset(tiny_anoclip: Callable[..., AnoCLIP], tmp_path: Path, tta: bool) -> None:
    from anomalib.data import Folder

    root = generate_folder(tmp_path / "data", n_good=10, n_bad=4)  # a fifth of the normal images is tested
    datamodule = Folder(
        name="parts",
        root=root,
        normal_dir="good",
        abnormal_dir="bad",
        mask_dir="masks",
        eval_batch_size=4,
        num_workers=0,
        seed=0,
    )
    model = tiny_anoclip(tta=tta, image_score_views="none")
    engine = Engine(accelerator="cpu", devices=1, logger=False, default_root_dir=tmp_path / "results")
    results = engine.test(model, datamodule=datamodule, verbose=False)
    assert {"image_AUROC", "pixel_AUROC"} <= set(results[0])
    assert model._prompted_for == ("object", "object")
    predictions = engine.predict(model, datamodule=datamodule)  # also under Lightning's no-grad loop
    assert predictions
    assert predictions[0].anomaly_map.shape[-2:] == (64, 64)
    assert list((tmp_path / "results").rglob("predictions.csv"))

    checkpoints = list((tmp_path / "results").rglob("*.ckpt"))
    assert checkpoints
    loaded = AnoCLIP.load_from_checkpoint(checkpoints[0])
    assert loaded.tta is tta
    assert loaded._prompted_for == ("object", "object")
    torch.testing.assert_close(loaded.model.state_embeddings, model.model.state_embeddings)
    torch.testing.assert_close(loaded.model.sentence_embeddings, model.model.sentence_embeddings)


def test_tta_model_refuses_export(tiny_anoclip: Callable[..., AnoCLIP], tmp_path: Path) -> None:
    model = tiny_anoclip(tta=True)
    engine = Engine(accelerator="cpu", logger=False, default_root_dir=tmp_path)
    exports = (
        lambda: engine.export(model, ExportType.ONNX, export_root=tmp_path),
        lambda: model.to_torch(tmp_path),
        lambda: model.to_openvino(tmp_path),
    )
    for export in exports:
        with pytest.raises(ExportRefusedError, match=r"cannot be exported\. Export AnoCLIP with tta=False"):
            export()
    assert not [path for path in tmp_path.rglob("*") if path.is_file()]


@pytest.mark.parametrize(("config", "tta"), [("anoclip.yaml", False), ("anoclip_plus.yaml", True)])
def test_shipped_configs_build_through_the_cli_parser(tmp_path: Path, config: str, tta: bool) -> None:
    overrides = {
        "model.backbone": str(TINY_CLIP_CONFIG),
        "model.pretrained": "null",
        "model.image_size": 64,
        "data.root": str(tmp_path),
        "trainer.accelerator": "cpu",
        "default_root_dir": str(tmp_path / "results"),
    }
    _, model, datamodule = Engine.from_config(CONFIGS / config, **overrides)
    assert isinstance(model, AnoCLIP)
    assert model.tta is tta
    assert model.hparams["image_score_views"] == "reference"
    assert model.hparams["preprocessing"] == "reference"  # the paper's protocol: the reference's PIL bilinear
    assert model.pre_processor.transform.transforms[0].image_filter == "bilinear"
    assert type(datamodule).__name__ == "MVTecAD"
    assert datamodule.category == "bottle"
