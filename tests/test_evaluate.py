"""The zero-shot evaluation sweep (``anomalib-glocalclip evaluate``) and the protocol configs, on generated data."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
import yaml
from anomalib import LearningType
from anomalib.data import Batch
from anomalib.metrics.aupro import _AUPRO
from anomalib.models.components import AnomalibModule
from anomalib.post_processing import PostProcessor
from anomalib.pre_processing import PreProcessor
from torchvision.transforms.v2 import Resize

from anomalib_glocalclip import AuxiliaryTransfer, GlocalCLIP
from anomalib_glocalclip.cli.evaluate import main
from anomalib_glocalclip.evaluation import SweepMismatchError, evaluate
from anomalib_glocalclip.evaluation import sweep as sweep_module
from anomalib_glocalclip.evaluation.models import describe_factory
from anomalib_glocalclip.glocalclip import PRESETS
from anomalib_glocalclip.metrics import reference_aupro
from anomalib_glocalclip.testing import OFFICIAL_LAYOUT_GENERATORS, TINY_CLIP_CONFIG

# sigma 1: the paper's 8 px smoothing is for 518 px inputs; these images are 64 px.
TINY = {"backbone": str(TINY_CLIP_CONFIG), "pretrained": None, "image_size": 64, "sigma": 1.0}
REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
SUBPROCESS_ENV = {**os.environ, "ANOMALIB_GLOCALCLIP_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
PAPER_CSV_COLUMNS = [
    "category",
    "image_AUROC",
    "image_AUPR",
    "pixel_AUROC",
    "pixel_ReferenceAUPRO",
    "pixel_AUPRO",
    "note",
]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Miniatures of MVTec AD (bottle, carpet: 2 good + 2 bad test images each) and a tiny random prompt file."""
    root = tmp_path_factory.mktemp("data")
    torch.manual_seed(0)
    prompts = GlocalCLIP(**TINY).save_prompts(root / "prompts.pt")
    return {"mvtec": OFFICIAL_LAYOUT_GENERATORS["mvtec_ad"](root / "mvtec"), "prompts": prompts, "root": root}


def glocalclip(data: dict[str, Path]) -> functools.partial:
    return functools.partial(GlocalCLIP, prompt_weights=str(data["prompts"]), **TINY)


def run_sweep(model: Any, output: Path, root: Path, dataset: str = "mvtec_ad", **kwargs: Any) -> pd.DataFrame:
    return evaluate(
        model, dataset, root, output=output, accelerator="cpu", num_workers=0, batch_size=4, progress=False, **kwargs
    )


@pytest.fixture(scope="module")
def sweep(data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    output = tmp_path_factory.mktemp("sweep")
    table = run_sweep(glocalclip(data), output, data["mvtec"])
    return {"output": output, "table": table}


def read_metrics(output: Path) -> pd.DataFrame:
    return pd.read_csv(output / "metrics.csv", index_col="category")


# ----- the sweep's files -----


def test_paper_format_csv(sweep: dict[str, Any]) -> None:
    output = sweep["output"]
    text = (output / "results.csv").read_text(encoding="utf-8").splitlines()
    assert text[0].split(",") == PAPER_CSV_COLUMNS
    rows = [line.split(",") for line in text[1:]]
    assert [row[0] for row in rows] == ["bottle", "carpet", "mean"]
    for row in rows:
        assert all(re.fullmatch(r"\d{1,3}\.\d", cell) for cell in row[1:6]), row  # x100, one decimal
    # values are the raw metrics x100, rounded; the mean is over the unrounded per-category values
    raw = read_metrics(output)
    table = pd.read_csv(output / "results.csv", index_col="category", keep_default_na=False)
    for column in PAPER_CSV_COLUMNS[1:6]:
        for category in ("bottle", "carpet"):
            assert table.loc[category, column] == pytest.approx(round(100 * raw.loc[category, column], 1), abs=1e-9)
        assert table.loc["mean", column] == pytest.approx(round(100 * raw[column].mean(), 1), abs=1e-9)
    assert (raw["status"] == "ok").all()
    assert (raw["n_images"] == 4).all()
    assert (raw["n_anomalous"] == 2).all()
    pd.testing.assert_frame_equal(sweep["table"], table, check_dtype=False)  # the API returns the same table


def test_markdown_has_the_papers_pairs(sweep: dict[str, Any]) -> None:
    markdown = (sweep["output"] / "results.md").read_text(encoding="utf-8")
    table = pd.read_csv(sweep["output"] / "results.csv", index_col="category")
    assert "| category | image (AUROC, AP) | pixel (AUROC, PRO) | pixel AUPRO (Anomalib) | note |" in markdown
    mean = table.loc["mean"]
    expected = (
        f"| **mean** | {mean.image_AUROC:.1f}, {mean.image_AUPR:.1f} | "
        f"{mean.pixel_AUROC:.1f}, {mean.pixel_ReferenceAUPRO:.1f} | {mean.pixel_AUPRO:.1f} |"
    )
    assert expected in markdown
    assert "PRO is the papers' AUPRO" in markdown


def test_heatmaps_are_written_per_category(sweep: dict[str, Any]) -> None:
    for category in ("bottle", "carpet"):
        heatmaps = sorted((sweep["output"] / "heatmaps" / category).rglob("*.png"))
        assert len(heatmaps) == 4, heatmaps
        result = json.loads((sweep["output"] / "categories" / f"{category}.json").read_text(encoding="utf-8"))
        assert result["status"] == "ok"
        assert result["heatmaps"] == f"heatmaps/{category}"


# ----- resume and failures -----


def _spy_on_category_runs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    original = sweep_module._CategoryRun.__call__

    def spy(self: Any, category: str) -> Any:
        calls.append(category)
        return original(self, category)

    monkeypatch.setattr(sweep_module._CategoryRun, "__call__", spy)
    return calls


def test_resume_redoes_only_missing_categories(
    sweep: dict[str, Any], data: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = tmp_path / "sweep"
    shutil.copytree(sweep["output"], output)
    bottle = output / "categories" / "bottle.json"
    bottle_before = (bottle.stat().st_mtime_ns, bottle.read_bytes())
    (output / "categories" / "carpet.json").unlink()
    calls = _spy_on_category_runs(monkeypatch)

    table = run_sweep(glocalclip(data), output, data["mvtec"])

    assert calls == ["carpet"]
    assert (bottle.stat().st_mtime_ns, bottle.read_bytes()) == bottle_before
    assert list(table.index) == ["bottle", "carpet", "mean"]
    again = run_sweep(glocalclip(data), output, data["mvtec"])  # nothing left to do: the stored results
    assert calls == ["carpet"]
    pd.testing.assert_frame_equal(again, table)
    metrics = [column for column in sweep["table"].columns if column.startswith(("image_", "pixel_"))]
    assert metrics
    pd.testing.assert_frame_equal(again.loc[["bottle"], metrics], sweep["table"].loc[["bottle"], metrics])


def test_crash_mid_sweep_keeps_finished_categories(
    data: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = sweep_module._CategoryRun.__call__

    def crash_on_carpet(self: Any, category: str) -> Any:
        """Like a process dying mid-sweep: the second category's run raises out of the sweep."""
        if category == "carpet":
            msg = "simulated crash"
            raise RuntimeError(msg)
        return original(self, category)

    output = tmp_path / "sweep"
    with monkeypatch.context() as patch:
        patch.setattr(sweep_module._CategoryRun, "__call__", crash_on_carpet)
        with pytest.raises(RuntimeError, match="simulated crash"):
            run_sweep(glocalclip(data), output, data["mvtec"])
    bottle = output / "categories" / "bottle.json"
    assert json.loads(bottle.read_text(encoding="utf-8"))["status"] == "ok"
    assert not (output / "categories" / "carpet.json").exists()
    assert not list((output / "categories").glob(".*"))  # no temporary files left behind
    partial = pd.read_csv(output / "results.csv", index_col="category")  # tables written up to the crash
    assert list(partial.index) == ["bottle", "mean"]
    assert partial.loc["mean", "note"] == "mean over 1 of 2 categories"
    bottle_before = bottle.read_bytes()

    calls = _spy_on_category_runs(monkeypatch)
    built: list[Any] = []

    def factory(evaluator: Any) -> GlocalCLIP:
        built.append(glocalclip(data)(evaluator=evaluator))
        return built[-1]

    factory.description = describe_factory(glocalclip(data))  # type: ignore[attr-defined] - the same sweep
    factory.title = "GlocalCLIP"  # type: ignore[attr-defined]

    table = run_sweep(factory, output, data["mvtec"])
    assert calls == ["carpet"]
    assert len(built) == 1
    assert bottle.read_bytes() == bottle_before
    assert list(table.index) == ["bottle", "carpet", "mean"]
    assert table.attrs["failed"] == []


def test_broken_category_is_reported_and_the_sweep_goes_on(
    data: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "mvtec"
    shutil.copytree(data["mvtec"], root)
    image = next((root / "bottle" / "test" / "good").glob("*.png"))
    original = image.read_bytes()
    image.write_bytes(original[:100])  # a truncated download
    output = tmp_path / "sweep"

    table = run_sweep(glocalclip(data), output, root)

    assert table.attrs["failed"] == ["bottle"]
    assert table.loc["bottle", "note"].startswith("failed: ")
    assert table.loc["carpet", "note"] == ""
    assert table.loc["mean", "note"] == "mean over 1 of 2 categories"
    assert table.loc["mean", "pixel_AUROC"] == table.loc["carpet", "pixel_AUROC"]
    stored = json.loads((output / "categories" / "bottle.json").read_text(encoding="utf-8"))
    assert stored["status"] == "failed"
    assert str(image) in stored["error"], stored["error"]  # the truncated file is named, in the table too
    assert image.name in table.loc["bottle", "note"]
    assert str(image) in stored["traceback"]
    assert "Category bottle failed" in (output / "evaluate.log").read_text(encoding="utf-8")
    assert "failed:" in (output / "results.md").read_text(encoding="utf-8")

    image.write_bytes(original)  # repaired: a rerun redoes the failed category only
    calls = _spy_on_category_runs(monkeypatch)
    table = run_sweep(glocalclip(data), output, root)
    assert calls == ["bottle"]
    assert table.attrs["failed"] == []
    assert table.loc["mean", "note"] == ""


def test_results_of_another_model_are_not_mixed(sweep: dict[str, Any], data: dict[str, Path], tmp_path: Path) -> None:
    output = tmp_path / "sweep"
    shutil.copytree(sweep["output"], output)
    other = functools.partial(GlocalCLIP, prompt_weights=str(data["prompts"]), **{**TINY, "sigma": 2.0})
    with pytest.raises(SweepMismatchError, match=r"sigma=2.0"):
        run_sweep(other, output, data["mvtec"], categories=["bottle"])
    run_sweep(other, output, data["mvtec"], categories=["bottle"], overwrite=True, heatmaps=False)
    assert [path.stem for path in (output / "categories").glob("*.json")] == ["bottle"]
    # The earlier sweep's report data went with its results.
    assert sorted(path.name for path in (output / "categories").iterdir()) == ["bottle.json", "bottle.report.npz"]


# ----- metrics per dataset level, and both AUPROs -----


def test_anomalous_only_pixel_dataset_reports_pixel_metrics(
    data: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = OFFICIAL_LAYOUT_GENERATORS["cvc_clinicdb"](tmp_path / "clinicdb")
    table = run_sweep(glocalclip(data), tmp_path / "out", root, dataset="cvc_clinicdb")
    assert list(table.columns) == ["pixel_AUROC", "pixel_ReferenceAUPRO", "pixel_AUPRO", "note"]
    assert list(table.index) == ["cvc_clinicdb", "mean"]
    assert table.attrs["failed"] == []
    assert ((table.iloc[:, :3] >= 0) & (table.iloc[:, :3] <= 100)).all().all()
    raw = read_metrics(tmp_path / "out")
    assert not [column for column in raw.columns if column.startswith("image_")]  # undefined with one class
    assert raw.loc["cvc_clinicdb", "n_anomalous"] == raw.loc["cvc_clinicdb", "n_images"] == 3
    assert "does not contain any normal images" not in caplog.text  # expected there, so not repeated
    assert "every test image of this dataset is anomalous" in (tmp_path / "out" / "results.md").read_text("utf-8")


def test_image_level_dataset_reports_image_metrics(data: dict[str, Path], tmp_path: Path) -> None:
    root = OFFICIAL_LAYOUT_GENERATORS["headct"](tmp_path / "headct")
    table = run_sweep(glocalclip(data), tmp_path / "out", root, dataset="headct")
    assert list(table.columns) == ["image_AUROC", "image_AUPR", "note"]
    assert list(table.index) == ["headct", "mean"]
    assert table.attrs["failed"] == []
    raw = read_metrics(tmp_path / "out")
    assert not [column for column in raw.columns if column.startswith("pixel_")]


class NoisyOracle(AnomalibModule):
    """Zero-shot stand-in with a known, imperfect localiser: its map is the blurred GT mask plus fixed noise."""

    def __init__(self, evaluator: Any = True) -> None:
        super().__init__(
            pre_processor=PreProcessor(transform=Resize((64, 64))),
            post_processor=PostProcessor(),
            evaluator=evaluator,
            visualizer=False,
        )
        self.test_maps: list[torch.Tensor] = []
        self.test_masks: list[torch.Tensor] = []

    @property
    def learning_type(self) -> LearningType:
        return LearningType.ZERO_SHOT

    @property
    def trainer_arguments(self) -> dict[str, Any]:
        return {}

    def configure_optimizers(self) -> None:
        return None

    def _predict(self, batch: Batch) -> Batch:
        masks = batch.gt_mask.float().reshape(len(batch.image), 1, *batch.image.shape[-2:])
        blurred = torch.nn.functional.avg_pool2d(masks, 9, stride=1, padding=4, count_include_pad=False)[:, 0]
        noise = torch.rand(blurred.shape, generator=torch.Generator().manual_seed(0))
        anomaly_map = 0.5 * blurred + 0.5 * noise
        return batch.update(anomaly_map=anomaly_map, pred_score=anomaly_map.flatten(1).amax(1))

    def validation_step(self, batch: Batch, *args: Any, **kwargs: Any) -> Batch:
        del args, kwargs
        return self._predict(batch)

    def test_step(self, batch: Batch, *args: Any, **kwargs: Any) -> Batch:
        del args, kwargs
        batch = self._predict(batch)
        self.test_maps.append(batch.anomaly_map.clone())
        self.test_masks.append(batch.gt_mask.clone())
        return batch


def test_both_aupros_are_reported_sane_and_on_raw_scores(data: dict[str, Path], tmp_path: Path) -> None:
    models: list[NoisyOracle] = []

    def factory(evaluator: Any) -> NoisyOracle:
        models.append(NoisyOracle(evaluator=evaluator))
        return models[-1]

    run_sweep(factory, tmp_path / "out", data["mvtec"], heatmaps=False)
    raw = read_metrics(tmp_path / "out")
    for model, category in zip(models, ["bottle", "carpet"], strict=True):
        maps, masks = torch.cat(model.test_maps), torch.cat(model.test_masks)
        reference, anomalib_aupro = raw.loc[category, "pixel_ReferenceAUPRO"], raw.loc[category, "pixel_AUPRO"]
        # a good but imperfect localiser scores well under both definitions, and they differ
        assert 0.4 < reference < 1, (reference, anomalib_aupro)
        assert 0.4 < anomalib_aupro < 1, (reference, anomalib_aupro)
        assert abs(reference - anomalib_aupro) > 1e-3
        # and they are the metrics of the model's raw maps (no Anomalib normalisation in between)
        assert reference == pytest.approx(float(reference_aupro(maps, masks)), abs=1e-6)
        metric = _AUPRO(fpr_limit=0.3)  # Anomalib's AUPRO on plain tensors
        metric.update(maps, masks.int())
        assert anomalib_aupro == pytest.approx(float(metric.compute()), abs=1e-6)


# ----- command line -----


@pytest.mark.slow
def test_cli_in_a_subprocess(data: dict[str, Path], tmp_path: Path) -> None:
    output = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "anomalib_glocalclip.cli",
        "evaluate",
        "--prompts",
        str(data["prompts"]),
        "--dataset",
        "mvtec",
        "--root",
        str(data["mvtec"]),
        "--categories",
        "bottle",
        "--output",
        str(output),
        "--backbone",
        str(TINY_CLIP_CONFIG),
        "--pretrained",
        "none",
        "--image-size",
        "64",
        "--model-arg",
        "sigma=1",
        "--accelerator",
        "cpu",
        "--workers",
        "0",
        "--batch-size",
        "4",
        "--no-heatmaps",
    ]
    process = subprocess.run(command, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=300, check=False)
    assert process.returncode == 0, process.stderr[-3000:]
    assert "| **mean** |" in process.stdout
    table = pd.read_csv(output / "results.csv", index_col="category")
    assert list(table.index) == ["bottle", "mean"]
    assert not (output / "heatmaps").exists()
    assert "sigma=1" in json.loads((output / "sweep.json").read_text(encoding="utf-8"))["model"]


def test_cli_needs_prompts_for_glocalclip(data: dict[str, Path]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--dataset", "mvtec_ad", "--root", str(data["mvtec"])])
    assert exit_info.value.code == 2


def test_cli_refuses_normalised_scores_for_musc(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--model", "musc", "--normalize-scores", "--dataset", "mvtec_ad", "--root", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "relative to each set" in capsys.readouterr().err


def test_cli_setup_errors_exit_2(data: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "--prompts",
            str(data["prompts"]),
            "--dataset",
            "mvtec_ad",
            "--root",
            str(data["mvtec"]),
            "--categories",
            "cable",
            "--output",
            str(tmp_path),
        ]
    )
    assert code == 2
    assert "no categories ['cable']" in capsys.readouterr().err


# ----- the protocol configs -----

PROTOCOLS = {
    # config: (preset, auxiliary layout, target dataset of the registry, target datamodule class name)
    "glocalclip_visa_to_mvtec": ("visa_to_mvtec", "visa", "mvtec_ad", "MVTecAD"),
    "glocalclip_mvtec_to_industrial": ("mvtec_to_industrial", "mvtec_ad", "visa", "Visa"),
    "glocalclip_colondb_to_clinicdb": ("colondb_to_clinicdb", "cvc_colondb", "cvc_clinicdb", "CVCClinicDB"),
    "glocalclip_clinicdb_to_medical": ("clinicdb_to_medical", "cvc_clinicdb", "headct", "HeadCT"),
}


@pytest.fixture(scope="module")
def miniatures(data: dict[str, Path]) -> dict[str, Path]:
    roots = {"mvtec_ad": data["mvtec"]}
    for name in ("visa", "cvc_colondb", "cvc_clinicdb", "headct"):
        roots[name] = OFFICIAL_LAYOUT_GENERATORS[name](data["root"] / name)
    return roots


def protocol_overrides(config: str, miniatures: dict[str, Path]) -> list[str]:
    """Command-line overrides running a protocol config on miniatures with the tiny random CLIP."""
    _, auxiliary, target, _ = PROTOCOLS[config]
    return [
        "--model.backbone",
        str(TINY_CLIP_CONFIG),
        "--model.pretrained",
        "null",
        "--model.image_size",
        "64",
        "--data.auxiliary",
        f"[{{layout: {auxiliary}, root: '{miniatures[auxiliary]}'}}]",
        "--data.target.root",
        str(miniatures[target]),
        "--data.num_workers",
        "0",
    ]


@pytest.mark.parametrize("config", list(PROTOCOLS))
def test_protocol_config_as_written(config: str) -> None:
    values = yaml.safe_load((CONFIGS / f"{config}.yaml").read_text(encoding="utf-8"))
    preset, auxiliary, _, target_class = PROTOCOLS[config]
    assert values["seed_everything"] == 111
    assert values["trainer"]["max_epochs"] == 15
    assert values["model"]["class_path"] == "anomalib_glocalclip.GlocalCLIP"
    assert values["model"]["init_args"]["preset"] == preset
    assert values["model"]["init_args"]["backbone"] == "ViT-L-14-336"
    assert values["model"]["init_args"]["image_size"] == 518
    assert values["data"]["class_path"] == "anomalib_glocalclip.AuxiliaryTransfer"
    sources = values["data"]["init_args"]["auxiliary"]
    assert [source["layout"] for source in sources] == [auxiliary]
    assert all(source["root"].startswith("./datasets/") for source in sources)
    target = values["data"]["init_args"]["target"]
    assert target["class_path"].endswith(f".{target_class}")
    assert target["init_args"]["root"].startswith("./datasets/")


@pytest.mark.parametrize("config", list(PROTOCOLS))
def test_protocol_config_parses_and_builds(config: str, miniatures: dict[str, Path]) -> None:
    from anomalib.cli.cli import AnomalibCLI

    cli = AnomalibCLI(
        args=["train", "-c", str(CONFIGS / f"{config}.yaml"), *protocol_overrides(config, miniatures)], run=False
    )
    preset, _, _, target_class = PROTOCOLS[config]
    assert isinstance(cli.model, GlocalCLIP)
    assert cli.model.learning_type == LearningType.ONE_CLASS
    assert cli.model.model.prompt_learner.shape == PRESETS[preset]
    datamodule = cli.datamodule
    assert isinstance(datamodule, AuxiliaryTransfer)
    assert type(datamodule.target).__name__ == target_class
    assert cli.config["train"]["trainer"]["max_epochs"] == 15
    assert cli.config["train"]["seed_everything"] == 111
    datamodule.prepare_data()
    datamodule.setup()
    assert len(datamodule.train_data) > 0
    assert datamodule.train_data.samples["label_index"].eq(1).any()
    assert len(datamodule.test_data) > 0


def test_zero_shot_config_parses_and_builds(data: dict[str, Path]) -> None:
    from anomalib.cli.cli import AnomalibCLI

    args = [
        "test",
        "-c",
        str(CONFIGS / "glocalclip_zero_shot.yaml"),
        "--model.backbone",
        str(TINY_CLIP_CONFIG),
        "--model.pretrained",
        "null",
        "--model.image_size",
        "64",
        "--model.prompt_weights",
        str(data["prompts"]),
        "--data.root",
        str(data["mvtec"]),
    ]
    cli = AnomalibCLI(args=args, run=False)
    assert isinstance(cli.model, GlocalCLIP)
    assert cli.model.learning_type == LearningType.ZERO_SHOT


@pytest.mark.slow
def test_protocol_config_trains_one_epoch_end_to_end(miniatures: dict[str, Path], tmp_path: Path) -> None:
    """``anomalib train -c configs/...`` as documented, one epoch on miniatures; the prompts land where it says."""
    config = "glocalclip_visa_to_mvtec"
    anomalib = Path(sys.executable).parent / "anomalib"
    command = [
        str(anomalib),
        "train",
        "-c",
        str(CONFIGS / f"{config}.yaml"),
        *protocol_overrides(config, miniatures),
        "--trainer.max_epochs",
        "1",
        "--trainer.accelerator",
        "cpu",
    ]
    process = subprocess.run(
        command, cwd=tmp_path, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=300, check=False
    )
    assert process.returncode == 0, process.stderr[-3000:]
    documented = re.search(r"(results/\S+/prompts\.pt)", (CONFIGS / f"{config}.yaml").read_text(encoding="utf-8"))
    assert documented is not None
    prompts = tmp_path / documented.group(1)
    assert prompts.is_file(), sorted(str(path) for path in tmp_path.rglob("prompts.pt"))
    assert GlocalCLIP(**TINY, prompt_weights=str(prompts)).model.prompt_learner.shape == PRESETS["visa_to_mvtec"]


# ----- one model, one pass, metrics on the device: the same numbers as the sweep before it -----


def _legacy_category(factory: Any, root: Path, category: str, output: Path) -> dict[str, float]:
    """One category the way the sweep ran it before: a fresh model, Anomalib's validation pass before the test,
    metric states on the host and Anomalib's own AUPRO; heatmaps by Anomalib's visualizer, per batch."""
    from anomalib.engine import Engine
    from anomalib.metrics import AUPR, AUPRO, AUROC, Evaluator, F1Max
    from anomalib.visualization import ImageVisualizer
    from lightning.pytorch import seed_everything

    from anomalib_glocalclip.data.catalogue import make_datamodule
    from anomalib_glocalclip.evaluation import prepare_model
    from anomalib_glocalclip.metrics import ReferenceAUPRO

    datamodule = make_datamodule("mvtec_ad", root, category, eval_batch_size=4, num_workers=0)
    evaluator = Evaluator(
        test_metrics=[
            AUROC(fields=["pred_score", "gt_label"], prefix="image_"),
            AUPR(fields=["pred_score", "gt_label"], prefix="image_"),
            F1Max(fields=["pred_score", "gt_label"], prefix="image_"),
            AUROC(fields=["anomaly_map", "gt_mask"], prefix="pixel_", strict=False),
            ReferenceAUPRO(prefix="pixel_", strict=False),
            AUPRO(fields=["anomaly_map", "gt_mask"], prefix="pixel_", strict=False, fpr_limit=0.3),
            F1Max(fields=["anomaly_map", "gt_mask"], prefix="pixel_", strict=False),
        ],
        compute_on_cpu=True,
    )
    seed_everything(111, verbose=False)
    model = factory(evaluator=evaluator)
    visualizer = ImageVisualizer(
        fields_config={"anomaly_map": {"colormap": True, "normalize": True}}, output_dir=output / category
    )
    prepare_model(model, evaluator, visualizer)
    engine = Engine(default_root_dir=output / "runs", accelerator="cpu", logger=False, enable_progress_bar=False)
    return engine.test(model, datamodule=datamodule, verbose=False)[0]


@pytest.mark.parametrize("model_name", ["glocalclip", "anoclip"])
def test_one_pass_sweep_equals_the_legacy_sweep(
    model_name: str, data: dict[str, Path], tmp_path: Path, validated: list[int]
) -> None:
    """The one-model, one-pass, device-metrics sweep gives the old sweep's metrics (1e-6) and the same heatmaps,
    whose predicted masks show the thresholds: fitted on the test pass, they equal the validation pass's."""
    from anomalib_glocalclip import AnoCLIP

    tiny_anoclip = {key: TINY[key] for key in ("backbone", "pretrained", "image_size")}
    factory = glocalclip(data) if model_name == "glocalclip" else functools.partial(AnoCLIP, **tiny_anoclip)
    built: list[Any] = []

    def counting_factory(evaluator: Any) -> Any:
        built.append(factory(evaluator=evaluator))
        return built[-1]

    output = tmp_path / "sweep"
    run_sweep(counting_factory, output, data["mvtec"])
    assert len(built) == 1  # one model for both categories
    assert validated == []  # one pass: no validation pass over the test files
    metrics = read_metrics(output)
    for category in ("bottle", "carpet"):
        legacy = _legacy_category(factory, data["mvtec"], category, tmp_path / "legacy")
        assert sum(validated) == 4 * (1 + (category == "carpet"))  # the legacy way validates first
        assert set(legacy) == {name for name in metrics.columns if name.startswith(("image_", "pixel_"))}
        for name, value in legacy.items():
            assert metrics.loc[category, name] == pytest.approx(float(value), abs=1e-6), (category, name)
        new_heatmaps = sorted((output / "heatmaps" / category).rglob("*.png"))
        old_heatmaps = sorted((tmp_path / "legacy" / category).rglob("*.png"))
        assert [path.relative_to(output / "heatmaps" / category) for path in new_heatmaps] == [
            path.relative_to(tmp_path / "legacy" / category) for path in old_heatmaps
        ]
        assert len(new_heatmaps) == 4
        for new, old in zip(new_heatmaps, old_heatmaps, strict=True):
            assert new.read_bytes() == old.read_bytes(), new


def test_sweep_draws_its_masks_at_the_threshold_its_report_states(
    data: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Normalisation off (the default): heatmap masks and labels use the thresholds fitted on the target, the image
    one being what report.html states, not Anomalib's raw 0.5; the masks on the synthetic defects are not empty."""
    from anomalib_glocalclip.components import FittedThresholdPostProcessor
    from anomalib_glocalclip.components.visualizer import PluginImageVisualizer
    from anomalib_glocalclip.evaluation.report_data import ReportData, report_data_path

    drawn: list[Any] = []
    thresholds: list[tuple[float, float]] = []
    draw, label = PluginImageVisualizer.visualize_item, FittedThresholdPostProcessor.post_process_batch

    def recording_draw(self: PluginImageVisualizer, item: Any) -> Any:
        drawn.append(item)
        return draw(self, item)

    def recording_label(self: FittedThresholdPostProcessor, batch: Any) -> None:
        thresholds.append((self.image_threshold.item(), self.pixel_threshold.item()))
        label(self, batch)

    monkeypatch.setattr(PluginImageVisualizer, "visualize_item", recording_draw)
    monkeypatch.setattr(FittedThresholdPostProcessor, "post_process_batch", recording_label)
    output = tmp_path / "sweep"
    run_sweep(glocalclip(data), output, data["mvtec"], categories=["bottle"])

    stated = ReportData.load(report_data_path(output, "bottle")).threshold
    assert f"image threshold {stated:.4g} (raw score)" in (output / "report.html").read_text(encoding="utf-8")
    image_threshold, pixel_threshold = thresholds[-1]  # the pictures' (the test pass labelled at the natural ones)
    assert image_threshold == pytest.approx(stated)
    assert (image_threshold, pixel_threshold) != (0.5, 2.0)  # fitted, not the natural thresholds
    assert len(drawn) == 4
    for item in drawn:
        assert bool(item.pred_label) == bool(item.pred_score > stated)
        assert torch.equal(item.pred_mask, item.anomaly_map > pixel_threshold)
    defects = [item for item in drawn if item.gt_label == 1]
    assert len(defects) == 2
    assert all(item.pred_mask.any() for item in defects)
    assert not all(torch.equal(item.pred_mask, item.anomaly_map > 0.5) for item in drawn)  # Anomalib's raw 0.5


# ----- every file read right or refused by name -----


def _copy_of_mvtec(data: dict[str, Path], tmp_path: Path) -> Path:
    root = tmp_path / "mvtec"
    shutil.copytree(data["mvtec"], root)
    return root


def test_mask_of_another_size_fails_the_category_naming_both_files(data: dict[str, Path], tmp_path: Path) -> None:
    from PIL import Image

    root = _copy_of_mvtec(data, tmp_path)
    mask = root / "carpet" / "ground_truth" / "scratch" / "001_mask.png"
    image = root / "carpet" / "test" / "scratch" / "001.png"
    with Image.open(mask) as original:
        small = original.resize((original.width // 2, original.height // 2), Image.NEAREST)
    small.save(mask)

    table = run_sweep(glocalclip(data), tmp_path / "strict", root)
    assert table.attrs["failed"] == ["carpet"]
    error = json.loads((tmp_path / "strict" / "categories" / "carpet.json").read_text(encoding="utf-8"))["error"]
    assert str(image) in error
    assert str(mask) in error
    assert "--resize-masks" in error

    table = run_sweep(glocalclip(data), tmp_path / "resized", root, resize_masks=True)
    assert table.attrs["failed"] == []
    assert read_metrics(tmp_path / "resized").loc["carpet", "pixel_AUROC"] > 0


def test_missing_mask_in_mvtec_layout_is_named(data: dict[str, Path], tmp_path: Path) -> None:
    root = _copy_of_mvtec(data, tmp_path)
    (root / "bottle" / "ground_truth" / "scratch" / "000_mask.png").unlink()
    table = run_sweep(glocalclip(data), tmp_path / "sweep", root)
    assert table.attrs["failed"] == ["bottle"]
    error = json.loads((tmp_path / "sweep" / "categories" / "bottle.json").read_text(encoding="utf-8"))["error"]
    assert str(root / "bottle" / "test" / "scratch" / "000.png") in error
    assert "000_mask.png" in error


def test_sixteen_bit_images_are_read_right(data: dict[str, Path], tmp_path: Path) -> None:
    """The sweep's datasets read a 16-bit PNG as its 8-bit twin (Anomalib's own reader clips it to white)."""
    import numpy as np
    from anomalib.data import MVTecAD
    from PIL import Image

    from anomalib_glocalclip.data.catalogue import make_datamodule
    from anomalib_glocalclip.data.dataset import SampleDataset

    root = _copy_of_mvtec(data, tmp_path)
    expected = {}
    for path in sorted((root / "carpet" / "test").rglob("*.png")):
        with Image.open(path) as image:
            gray = np.asarray(image.convert("L"), dtype=np.uint16)
        Image.fromarray(gray * 257).save(path)  # mode I;16: the same picture at 16 bits
        expected[str(path)] = torch.from_numpy(gray.astype(np.float32) / 255.0)
    datamodule = make_datamodule("mvtec_ad", root, "carpet", num_workers=0)
    datamodule.setup()
    anomalib = MVTecAD(root=root, category="carpet", num_workers=0)
    anomalib.setup()
    anomalib_item = anomalib.test_data[0]
    assert isinstance(datamodule.test_data, SampleDataset)
    assert list(datamodule.test_data.samples.image_path) == list(anomalib.test_data.samples.image_path)
    for index in range(len(datamodule.test_data)):
        item = datamodule.test_data[index]
        for channel in item.image:
            assert torch.allclose(channel, expected[item.image_path], atol=1e-6), item.image_path
    assert anomalib_item.image.min() == 1.0  # what the sweep read before: every pixel white


def test_sweep_reads_sixteen_bit_images_end_to_end(data: dict[str, Path], tmp_path: Path) -> None:
    """A 16-bit copy of a category scores as its 8-bit twin through the whole sweep (the trainer sets the
    datamodule up again before testing; the sweep's datasets must stay read by the plugin's reader)."""
    import numpy as np
    from PIL import Image

    roots = {}
    for depth in (8, 16):
        root = tmp_path / f"mvtec_{depth}"
        shutil.copytree(data["mvtec"] / "carpet", root / "carpet")
        for path in sorted((root / "carpet" / "test").rglob("*.png")):
            with Image.open(path) as image:
                gray = np.asarray(image.convert("L"), dtype=np.uint16)
            Image.fromarray(gray * 257 if depth == 16 else gray.astype(np.uint8)).save(path)
        roots[depth] = root
    for depth, root in roots.items():
        run_sweep(glocalclip(data), tmp_path / f"sweep_{depth}", root, heatmaps=False)
    eight, sixteen = (read_metrics(tmp_path / f"sweep_{depth}") for depth in (8, 16))
    assert list(eight.index) == ["carpet"]
    for name in ("image_AUROC", "pixel_AUROC", "pixel_AUPRO"):  # 1e-5: x/65535 and x/255 differ by an ulp in fp32
        assert sixteen.loc["carpet", name] == pytest.approx(eight.loc["carpet", name], abs=1e-5), name


# ----- SIGTERM / SIGINT: a stop, not a failure -----

_SLOW_SWEEP = """
import sys, time
from pathlib import Path
from anomalib_glocalclip.components import ZeroShotCLIPMixin
from anomalib_glocalclip.cli.evaluate import main

marker = Path(sys.argv[1])
step = ZeroShotCLIPMixin.test_step if hasattr(ZeroShotCLIPMixin, "test_step") else None

def slow_test_step(self, batch, *args, **kwargs):
    if self.trainer.datamodule.category == "carpet":
        marker.touch()  # the test may signal now: carpet is being tested
        time.sleep(60)
    return type(self).validation_step(self, batch, *args, **kwargs)

ZeroShotCLIPMixin.test_step = slow_test_step
sys.exit(main(sys.argv[2:]))
"""


def _process_group_members(pgid: int) -> list[int]:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


@pytest.mark.skipif(sys.platform != "linux", reason="signals and /proc as on Linux")
@pytest.mark.parametrize(("target", "signum"), [("process", 15), ("group", 15), ("process", 2)])
def test_signal_stops_the_sweep(target: str, signum: int, data: dict[str, Path], tmp_path: Path) -> None:
    """SIGTERM/SIGINT mid-category: that category is interrupted (not failed), the finished ones are tabled, the exit
    status is 128 + signal, and no data loader worker is left behind."""
    import signal
    import time

    output, marker, script = tmp_path / "out", tmp_path / "carpet_started", tmp_path / "slow_sweep.py"
    script.write_text(_SLOW_SWEEP, encoding="utf-8")
    command = [
        sys.executable, str(script), str(marker), "--prompts", str(data["prompts"]), "--dataset", "mvtec_ad",
        "--root", str(data["mvtec"]), "--output", str(output), "--backbone", str(TINY_CLIP_CONFIG),
        "--pretrained", "none", "--image-size", "64", "--accelerator", "cpu", "--workers", "2", "--batch-size", "2",
        "--no-progress",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, env=SUBPROCESS_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert process.poll() is None, process.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "carpet never started"
            time.sleep(0.2)
        if target == "group":
            os.killpg(process.pid, signum)
        else:
            os.kill(process.pid, signum)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 128 + signum, stderr[-3000:]
    assert "rerun the same command" in stderr
    carpet = json.loads((output / "categories" / "carpet.json").read_text(encoding="utf-8"))
    assert carpet["status"] == "interrupted"
    assert carpet["error"] == f"stopped by {signal.Signals(signum).name}"
    assert json.loads((output / "categories" / "bottle.json").read_text(encoding="utf-8"))["status"] == "ok"
    table = pd.read_csv(output / "results.csv", index_col="category")
    assert list(table.index) == ["bottle", "carpet", "mean"]
    assert table.loc["carpet", "note"].startswith("interrupted")
    deadline = time.monotonic() + 10
    while _process_group_members(process.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _process_group_members(process.pid) == []  # no worker left behind


# ----- the prompt file's backbone, and hints in this command's options -----


def test_prompt_file_backbone_is_used_unless_overridden(data: dict[str, Path], tmp_path: Path) -> None:
    from anomalib_glocalclip.evaluation import glocalclip_factory
    from anomalib_glocalclip.glocalclip.prompt_file import PromptFileError

    others = {key: value for key, value in TINY.items() if key != "backbone"}
    factory = glocalclip_factory(data["prompts"], **others)  # no backbone: the file's (the tiny CLIP)
    assert factory(evaluator=True).backbone_name == str(TINY_CLIP_CONFIG)  # builds: the prompts fit

    wider = json.loads(TINY_CLIP_CONFIG.read_text(encoding="utf-8"))
    wider["text_cfg"]["width"] *= 2
    other_config = tmp_path / "wider-clip.json"
    other_config.write_text(json.dumps(wider), encoding="utf-8")
    factory = glocalclip_factory(data["prompts"], backbone=str(other_config), **others)
    with pytest.raises(PromptFileError) as error:
        factory(evaluator=True)
    assert str(TINY_CLIP_CONFIG) in str(error.value)
    assert str(other_config) in str(error.value)
    assert "leave --model.backbone out" in str(error.value)  # `evaluate` says --backbone (evaluate_hints)


def test_cli_hints_name_evaluate_options() -> None:
    from anomalib_glocalclip.cli.evaluate import evaluate_hints

    hint = "pass --model.pretrained /path/to/x.bin, or --model.pretrained null; check --model.backbone."
    assert evaluate_hints(hint) == "pass --pretrained /path/to/x.bin, or --pretrained none; check --backbone."


def test_models_draw_with_the_plugin_visualizer(data: dict[str, Path]) -> None:
    from anomalib_glocalclip import AnoCLIP
    from anomalib_glocalclip.components.visualizer import PluginImageVisualizer
    from anomalib_glocalclip.data import visualizer as old_location

    tiny = {key: TINY[key] for key in ("backbone", "pretrained", "image_size")}
    for model in (glocalclip(data)(), AnoCLIP(**tiny)):
        assert type(model.visualizer) is PluginImageVisualizer
    assert old_location.PluginImageVisualizer is PluginImageVisualizer


def test_one_pass_heatmaps_are_drawn_on_threads_and_a_drawing_error_fails_the_test(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from anomalib.data import ImageBatch
    from PIL import Image

    from anomalib_glocalclip.components import FittedThresholdPostProcessor
    from anomalib_glocalclip.evaluation.one_pass import ThresholdsFromTest

    class Drawer:
        def __init__(self, fail_on: str | None = None) -> None:
            self.fail_on, self.output_dir = fail_on, tmp_path / (fail_on or "out")

        def visualize_item(self, item: Any) -> Image.Image:
            if item.image_path.endswith(self.fail_on or "-"):
                msg = f"cannot draw {item.image_path}"
                raise ValueError(msg)
            return Image.new("RGB", (4, 4))

    def run(drawer: Drawer, batches: list[list[str]]) -> None:
        model = SimpleNamespace(post_processor=FittedThresholdPostProcessor(enable_normalization=False),
                                device=torch.device("cpu"))
        trainer = SimpleNamespace(datamodule=None, default_root_dir=tmp_path)
        callback = ThresholdsFromTest(drawer)
        callback.on_test_start(trainer, model)
        for names in batches:
            outputs = ImageBatch(image=torch.zeros(len(names), 3, 4, 4), pred_score=torch.rand(len(names)),
                                 gt_label=torch.tensor([0, 1] * len(names))[: len(names)],
                                 image_path=[str(tmp_path / name) for name in names])
            callback.on_test_batch_end(trainer, model, outputs, outputs, 0)
        callback.on_test_epoch_end(trainer, model)

    run(Drawer(), [["a.png", "b.png"], ["c.png"], ["d.png"]])
    assert sorted(path.name for path in (tmp_path / "out").rglob("*.png")) == ["a.png", "b.png", "c.png", "d.png"]
    with pytest.raises(ValueError, match=r"cannot draw .*b\.png"):
        run(Drawer(fail_on="b.png"), [["a.png", "b.png"]])


# ----- MuSc: each category one set, labelled at its own threshold -----

MUSC_CLI = ["--model", "musc", "--backbone", str(TINY_CLIP_CONFIG), "--pretrained", "none", "--image-size", "64",
            "--model-arg", "feature_layers=[3, 6, 9, 12]", "--dataset", "mvtec_ad", "--workers", "0",
            "--batch-size", "3", "--accelerator", "cpu", "--no-progress"]


def test_musc_sweep_scores_each_category_once_and_reports_the_threshold_its_masks_use(
    data: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """``evaluate --model musc``: each category's test split is one set, encoded once (validation's set is kept for
    the test); labels and masks are at the set's distance threshold, which report.html states (not on the scores)."""
    from anomalib_glocalclip.components.visualizer import PluginImageVisualizer
    from anomalib_glocalclip.evaluation.report_data import ReportData, report_data_path
    from anomalib_glocalclip.musc.torch_model import outlier_threshold

    drawn: list[Any] = []
    draw = PluginImageVisualizer.visualize_item

    def recording_draw(self: PluginImageVisualizer, item: Any) -> Any:
        drawn.append(item)
        return draw(self, item)

    monkeypatch.setattr(PluginImageVisualizer, "visualize_item", recording_draw)
    caplog.set_level("INFO", logger="anomalib_glocalclip.musc")
    output = tmp_path / "musc"
    assert main([*MUSC_CLI, "--root", str(data["mvtec"]), "--output", str(output)]) == 0

    scored = [record for record in caplog.records if "MuSc: scored a set of 4 images" in record.getMessage()]
    kept = [record for record in caplog.records if "scored earlier in this run" in record.getMessage()]
    assert len(scored) == 2  # one set per category (4 test images each), not per batch of 3
    assert len(kept) == 2  # the test reused validation's set: no second encode
    assert "rscin_k=(1, 2, 3)" in (output / "sweep.json").read_text()
    assert read_metrics(output).loc[["bottle", "carpet"], "image_AUROC"].notna().all()
    report = (output / "report.html").read_text(encoding="utf-8")
    for category in ("bottle", "carpet"):
        stated = ReportData.load(report_data_path(output, category))
        items = [item for item in drawn if f"/{category}/" in str(item.image_path)]
        assert len(items) == 4
        maxima = torch.stack([item.anomaly_map.amax() for item in items])
        assert stated.threshold == pytest.approx(float(outlier_threshold(maxima)), rel=1e-4)
        assert not stated.threshold_on_scores
        assert f"image threshold {stated.threshold:.4g} (the model's own, in anomaly-map units" in report
        for item in items:
            assert bool(item.pred_label) == bool(item.anomaly_map.amax() > stated.threshold)
            assert torch.equal(item.pred_mask.bool(), item.anomaly_map > stated.threshold)


@pytest.mark.parametrize("few_shot", [["--few-shot", "1"],
                                      ["--model", str(CONFIGS / "musc_visa.yaml"), "--model-arg", "few_shot=1"]])
def test_musc_sweep_takes_each_categorys_own_references_and_the_visa_preset(
    few_shot: list[str], data: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``--few-shot 1``, or a preset config's ``few_shot``: each category's reference comes from its own train split
    (none carried into the next); ``musc`` on VisA takes RsCIN's k = (1, 8, 9), elsewhere (1, 2, 3)."""
    caplog.set_level("INFO", logger="anomalib_glocalclip.musc")
    output = tmp_path / "musc"
    command = [*MUSC_CLI, "--root", str(data["mvtec"]), "--output", str(output), "--no-heatmaps", *few_shot]
    assert main(command) == 0
    references = [record.getMessage() for record in caplog.records if "reference images" in record.getMessage()]
    assert len(references) == 2
    assert "/bottle/train/good/" in references[0]
    assert "/carpet/train/good/" in references[1]
    assert "with 1 references" in caplog.text
    from anomalib_glocalclip.evaluation.sweep import resolve_model

    assert resolve_model("musc", {}, "visa").keywords["rscin_k"] == (1, 8, 9)
    assert resolve_model("musc", {"rscin_k": None}, "visa").keywords["rscin_k"] is None
    assert resolve_model("musc", {}, "mvtec_ad").keywords["rscin_k"] == (1, 2, 3)
