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
    assert run_sweep(glocalclip(data), output, data["mvtec"]) is not None
    assert calls == ["carpet"]


def test_crash_mid_sweep_keeps_finished_categories(
    data: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class CrashingFactory:
        """Builds the tiny GlocalCLIP; its ``crash_on``-th call raises, like a process dying mid-sweep."""

        def __init__(self, crash_on: int | None) -> None:
            self.calls = 0
            self.crash_on = crash_on

        def __call__(self, evaluator: Any) -> GlocalCLIP:
            self.calls += 1
            if self.calls == self.crash_on:
                msg = "simulated crash"
                raise RuntimeError(msg)
            return glocalclip(data)(evaluator=evaluator)

    output = tmp_path / "sweep"
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_sweep(CrashingFactory(crash_on=2), output, data["mvtec"])
    bottle = output / "categories" / "bottle.json"
    assert json.loads(bottle.read_text(encoding="utf-8"))["status"] == "ok"
    assert not (output / "categories" / "carpet.json").exists()
    assert not list((output / "categories").glob(".*"))  # no temporary files left behind
    partial = pd.read_csv(output / "results.csv", index_col="category")  # tables written up to the crash
    assert list(partial.index) == ["bottle", "mean"]
    assert partial.loc["mean", "note"] == "mean over 1 of 2 categories"
    bottle_before = bottle.read_bytes()

    calls = _spy_on_category_runs(monkeypatch)
    factory = CrashingFactory(crash_on=None)
    table = run_sweep(factory, output, data["mvtec"])
    assert calls == ["carpet"]
    assert factory.calls == 1
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
    assert stored["traceback"]
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
