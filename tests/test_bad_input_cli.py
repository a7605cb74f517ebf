"""The bad-input suite, command level: each case through the path a user takes (``Engine``, the CLI, prompt files).

``test_bad_input.py`` holds the data-level cases (what the readers make of each odd file); here the same files go
through ``predict`` on a folder, training, export, prompt files and the result writers. Each case asserts the
exact outcome (the result, or an error naming the file and the fix) and that no earlier output was changed.
The CLI cases run the real ``anomalib`` console script in a subprocess and are marked ``slow``.

Read-only folders and a full disk are simulated by making the write raise the operating system's error
(``EACCES``/``ENOSPC``): the tests run as root on some machines, where file permissions do not stop a write.
"""

from __future__ import annotations

import csv
import errno
import json
import logging
import re
import signal
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from anomalib.data import MVTecAD
from anomalib.engine import Engine
from lightning.pytorch import Callback, Trainer
from PIL import Image

import anomalib_glocalclip.glocalclip.prompt_file as prompt_file_module
from anomalib_glocalclip import AuxiliarySource, AuxiliaryTransfer, GlocalCLIP
from anomalib_glocalclip.compat import post_processor_thresholds
from anomalib_glocalclip.components import PredictionTable
from anomalib_glocalclip.data import DatasetLayoutError, LayoutDataModule
from anomalib_glocalclip.data.predict_input import PredictFilesError
from anomalib_glocalclip.glocalclip import NoAnomaliesError, PromptFileError, read_prompt_file
from anomalib_glocalclip.glocalclip.training_data import check_training_labels
from anomalib_glocalclip.testing import TINY_CLIP_CONFIG, generate_folder, generate_mvtec_ad
from anomalib_glocalclip.utils.errors import TRACEBACK_ENV, PluginError, plugin_error_message
from anomalib_glocalclip.utils.files import OutputWriteError, atomic_write_text
from image_files import gray16_array, gray16_as_8_bit, save, save_rgb, truncated_bytes

TINY = {"backbone": str(TINY_CLIP_CONFIG), "pretrained": None, "image_size": 64}
TINY_CLI = ["--model.backbone", str(TINY_CLIP_CONFIG), "--model.pretrained", "null", "--model.image_size", "64"]
UNREADABLE = {
    "truncated.png": truncated_bytes(Image.fromarray(np.full((64, 64, 3), 90, np.uint8)), "PNG", keep=0.5),
    "zero_bytes.png": b"",
    "text.png": b"not an image, just text\n",
}


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` pixels, with almost no pixel data (a 'bomb' check)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = chunk(b"IDAT", zlib.compress(b"\0" * 8))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + pixels + chunk(b"IEND", b"")


def predict_folder(tmp_path: Path, *, sixteen_bit: bool = False) -> tuple[Path, dict[str, bytes]]:
    """A folder of readable 8-bit images (a gray one, a white one), the unreadable files and, with ``sixteen_bit``,
    the gray image's 16-bit twin ``c16.png``."""
    folder = tmp_path / "images"
    save_rgb(folder / "a.png", seed=1)
    save_rgb(folder / "b.png", seed=2)
    gray16 = gray16_array(seed=3)
    if sixteen_bit:
        save(folder / "c16.png", Image.fromarray(gray16))
    save(folder / "c8.png", Image.fromarray(gray16_as_8_bit(gray16)))
    save(folder / "white.png", Image.fromarray(np.full((64, 64, 3), 255, np.uint8)))  # what Anomalib reads for c16
    for name, content in UNREADABLE.items():
        (folder / name).write_bytes(content)
    return folder, {path.name: path.read_bytes() for path in folder.iterdir()}


def read_table(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as file:
        return {Path(row["image_path"]).name: row for row in csv.DictReader(file)}


# ----- predict on a folder -----
def test_predict_on_a_folder_with_unreadable_files_names_them_and_predicts_nothing(tmp_path: Path) -> None:
    folder, contents = predict_folder(tmp_path)
    engine = Engine(accelerator="cpu", logger=False, default_root_dir=tmp_path / "results", enable_progress_bar=False)
    with pytest.raises(PredictFilesError) as caught:
        engine.predict(GlocalCLIP(**TINY), data_path=folder)
    message = str(caught.value)
    assert message.startswith(f"3 image(s) of {folder} cannot be predicted with Anomalib's PredictDataset")
    assert all(f"- Cannot read image {folder / name}" in message for name in UNREADABLE)
    assert "Fix: replace or remove the unreadable files." in message
    assert sorted(path.name for path, _ in caught.value.unreadable) == sorted(UNREADABLE)
    assert not list((tmp_path / "results").rglob("predictions.csv"))
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == contents  # inputs untouched

    for name in UNREADABLE:  # without them, the folder is predicted, each image in the table
        (folder / name).unlink()
    engine.predict(GlocalCLIP(**TINY), data_path=folder)
    (table,) = (tmp_path / "results").rglob("predictions.csv")
    rows = read_table(table)
    assert set(rows) == {"a.png", "b.png", "c8.png", "white.png"}
    assert all(0.0 <= float(row["pred_score"]) <= 1.0 and row["pred_label"] in {"0", "1"} for row in rows.values())


def test_predict_on_a_folder_refuses_16_bit_files_and_names_the_datamodule_that_reads_them(tmp_path: Path) -> None:
    """Anomalib's ``PredictDataset`` would read ``c16.png`` white: refused before any batch, by name, with the fix;
    the fix (``LayoutDataModule``, layout ``normal_folder``) predicts every image, ``c16.png`` as its 8-bit twin."""
    folder, _ = predict_folder(tmp_path, sixteen_bit=True)
    for name in UNREADABLE:
        (folder / name).unlink()
    engine = Engine(accelerator="cpu", logger=False, default_root_dir=tmp_path / "results", enable_progress_bar=False)
    with pytest.raises(PredictFilesError) as caught:
        engine.predict(GlocalCLIP(**TINY), data_path=folder)
    assert caught.value.misread == [folder / "c16.png"]
    assert f"--data LayoutDataModule --data.layout normal_folder --data.root {folder}" in str(caught.value)
    assert not list((tmp_path / "results").rglob("predictions.csv"))

    datamodule = LayoutDataModule(root=str(folder), layout="normal_folder", num_workers=0)
    model = GlocalCLIP(**TINY)
    predictions = engine.predict(model, datamodule=datamodule)
    scores = {Path(path).name: float(score) for batch in predictions
              for path, score in zip(batch.image_path, batch.pred_score, strict=True)}
    assert sorted(scores) == ["a.png", "b.png", "c16.png", "c8.png", "white.png"]
    items = [datamodule.test_data[index] for index in range(len(datamodule.test_data))]
    transform = model.pre_processor.transform
    with torch.no_grad():  # the scores before post-processing, of the images as the datamodule reads them
        raw = {Path(item.image_path).name: float(model.model(transform(item.image[None])).pred_score) for item in items}
    assert abs(raw["c16.png"] - raw["c8.png"]) < 2e-3  # 8-bit rounding only
    assert abs(raw["c16.png"] - raw["white.png"]) > 5 * abs(raw["c16.png"] - raw["c8.png"])


def test_predict_on_a_folder_of_only_unreadable_files_lists_them_all(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    for name, content in UNREADABLE.items():
        (folder / name).write_bytes(content)
    (folder / "bomb.png").write_bytes(png_header_only(20_000, 20_000))
    engine = Engine(accelerator="cpu", logger=False, default_root_dir=tmp_path / "results", enable_progress_bar=False)
    with pytest.raises(PredictFilesError) as caught:
        engine.predict(GlocalCLIP(**TINY), data_path=folder)
    reasons = dict(caught.value.unreadable)
    assert {path.name for path in reasons} == {*UNREADABLE, "bomb.png"}
    # 400 million declared pixels: PIL's decompression-bomb guard, named with the file and the fix.
    assert f"The image {folder / 'bomb.png'} is too large to read safely" in reasons[folder / "bomb.png"]
    assert "PIL.Image.MAX_IMAGE_PIXELS = None" in str(caught.value)


# ----- result writers: read-only folder, full disk, interruption -----
@pytest.mark.parametrize(
    ("code", "fix"), [(errno.EACCES, "Make the folder writable"), (errno.ENOSPC, "Free disk space")]
)
def test_prediction_table_write_failure_keeps_the_earlier_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, fix: str
) -> None:
    earlier = atomic_write_text(tmp_path / "predictions.csv", "image_path,pred_score,pred_label\nold,0.1,0\n")
    before = earlier.read_bytes()
    original_open = Path.open

    def failing_open(self: Path, mode: str = "r", *args: object, **kwargs: object) -> object:
        if "w" in mode:
            raise OSError(code, "simulated")
        return original_open(self, mode, *args, **kwargs)

    monkeypatch.setattr(Path, "open", failing_open)
    table = PredictionTable()
    table._rows = [("new.png", 0.9, 1)]
    trainer = type("Trainer", (), {"is_global_zero": True, "default_root_dir": str(tmp_path)})()
    with pytest.raises(OutputWriteError) as caught:
        table._finish(trainer)
    monkeypatch.undo()
    assert str(caught.value).startswith(f"Could not write {earlier}: simulated. {fix}")
    assert "an earlier predictions.csv is unchanged" in str(caught.value)
    assert earlier.read_bytes() == before
    assert [path.name for path in tmp_path.iterdir()] == ["predictions.csv"]  # no temporary file left


@pytest.mark.parametrize(
    ("error", "expected"),
    [(OSError(errno.ENOSPC, "No space left on device"), "Free disk space"),
     (PermissionError(errno.EACCES, "Permission denied"), "Make the folder writable")],
    ids=["disk-full", "read-only"],
)
def test_prompt_write_failure_keeps_the_earlier_prompt_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: OSError, expected: str
) -> None:
    model = GlocalCLIP(**TINY)
    path = model.save_prompts(tmp_path / "prompts.pt")
    before = path.read_bytes()
    with torch.no_grad():
        model.model.prompt_learner.global_normal_ctx.add_(1.0)

    def failing_save(obj: object, file: Path) -> None:
        Path(file).write_bytes(b"partial")
        raise error

    monkeypatch.setattr(prompt_file_module.torch, "save", failing_save)
    with pytest.raises(OutputWriteError, match=rf"Could not write {path}: .*{expected}"):
        model.save_prompts(path)
    assert path.read_bytes() == before
    assert [file.name for file in tmp_path.iterdir()] == ["prompts.pt"]


def test_interrupted_prompt_write_keeps_the_last_complete_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = GlocalCLIP(**TINY)
    path = model.save_prompts(tmp_path / "prompts.pt")
    saved = read_prompt_file(path).state_dict

    def interrupted_save(obj: object, file: Path) -> None:
        Path(file).write_bytes(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(prompt_file_module.torch, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        model.save_prompts(path)
    monkeypatch.undo()
    again = read_prompt_file(path).state_dict
    assert again.keys() == saved.keys()
    assert all(torch.equal(again[name], saved[name]) for name in saved)
    assert [file.name for file in tmp_path.iterdir()] == ["prompts.pt"]


def test_training_interrupted_by_the_user_keeps_the_last_complete_prompt_file(tmp_path: Path) -> None:
    folder = generate_folder(tmp_path / "folder", n_good=2, n_bad=2)
    snapshot: dict[str, torch.Tensor] = {}

    class InterruptSecondEpoch(Callback):
        def on_train_epoch_start(self, trainer: Trainer, pl_module: GlocalCLIP) -> None:
            if trainer.current_epoch == 1:
                snapshot.update({k: v.clone() for k, v in pl_module.model.prompt_learner.state_dict().items()})
                raise KeyboardInterrupt  # Ctrl+C after the first epoch's prompts were written

    engine = Engine(accelerator="cpu", logger=False, default_root_dir=tmp_path / "results", max_epochs=3,
                    enable_progress_bar=False, callbacks=[InterruptSecondEpoch()])
    datamodule = AuxiliaryTransfer(auxiliary=AuxiliarySource("folder", str(folder)), num_workers=0,
                                   train_batch_size=4)
    sigint = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit):  # Lightning's graceful shutdown ends with exit status 1
            engine.fit(GlocalCLIP(**TINY, learning_rate=1e-2), datamodule=datamodule)
    finally:
        signal.signal(signal.SIGINT, sigint)  # Lightning ignores further Ctrl+C while it shuts down
    (path,) = (tmp_path / "results").rglob("prompts.pt")
    saved = read_prompt_file(path).state_dict
    assert saved.keys() == snapshot.keys()
    assert all(torch.equal(saved[name], snapshot[name].float()) for name in snapshot)
    assert not [file for file in path.parent.iterdir() if file.name.endswith(".tmp")]


# ----- training data -----
def test_learning_on_normal_only_data_is_refused_before_any_step(tmp_path: Path) -> None:
    root = generate_mvtec_ad(tmp_path / "mvtec", categories=("bottle",), n_train=2, n_test_good=1, n_test_bad=1)
    engine = Engine(accelerator="cpu", logger=False, default_root_dir=tmp_path / "results", max_epochs=1,
                    enable_progress_bar=False)
    model = GlocalCLIP(**TINY)
    before = {name: value.clone() for name, value in model.model.prompt_learner.state_dict().items()}
    with pytest.raises(NoAnomaliesError) as caught:
        engine.fit(model, datamodule=MVTecAD(root=root, category="bottle", num_workers=0))
    message = str(caught.value)
    assert "holds no anomalous image" in message
    assert "--data.auxiliary" in message
    assert "--data.synthetic" in message
    assert not list((tmp_path / "results").rglob("prompts.pt"))
    after = model.model.prompt_learner.state_dict()
    assert all(torch.equal(after[name], before[name]) for name in before)


def test_image_level_anomalies_are_enough_to_learn(tmp_path: Path) -> None:
    folder = generate_folder(tmp_path / "folder", with_masks=False, n_good=2, n_bad=2)
    datamodule = AuxiliaryTransfer(auxiliary=AuxiliarySource("folder", str(folder)), num_workers=0)
    datamodule.setup()
    check_training_labels(datamodule)  # no error
    normal_only = generate_folder(tmp_path / "normal", with_masks=False, n_good=2, n_bad=0)
    datamodule = AuxiliaryTransfer(auxiliary=AuxiliarySource("folder", str(normal_only)), num_workers=0)
    datamodule.setup()
    with pytest.raises(NoAnomaliesError, match=r"\(2 images\) holds no anomalous image"):
        check_training_labels(datamodule)


def test_auxiliary_transfer_takes_its_target_as_a_config_dict(tmp_path: Path) -> None:
    root = generate_mvtec_ad(tmp_path / "mvtec", categories=("bottle",), n_train=1, n_test_good=1, n_test_bad=1)
    folder = generate_folder(tmp_path / "folder", n_good=2, n_bad=2)
    for class_path in ("MVTecAD", "anomalib.data.MVTecAD"):
        datamodule = AuxiliaryTransfer(
            auxiliary=AuxiliarySource("folder", str(folder)),
            target={"class_path": class_path, "init_args": {"root": str(root), "category": "bottle"}},
            num_workers=0,
        )
        assert type(datamodule.target) is MVTecAD
        target = datamodule.target
        assert (target.category, datamodule.category, target.num_workers) == ("bottle", "bottle", 0)
        datamodule.setup()
        assert len(datamodule.test_data) == 2
    with pytest.raises(TypeError, match="'Engine' is not an Anomalib datamodule"):
        AuxiliaryTransfer(auxiliary=AuxiliarySource("folder", str(folder)), target={"class_path": "Engine"})


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda root: root / "nowhere", "Dataset folder {root} does not exist"),
        (lambda root: (root / "bottle").mkdir(parents=True) or root, "No mvtec_ad categories found under {root}"),
        (lambda root: (root / "bottle" / "train" / "good").mkdir(parents=True) or root,
         "Sub-folders of {root} not laid out so: bottle (e.g. {root}/bottle lacks"),  # the layout's folders listed
    ],
    ids=["non-existent-root", "empty-category", "category-without-test"],
)
def test_auxiliary_dataset_problems_name_the_folder(tmp_path: Path, make, expected: str) -> None:
    root = make(tmp_path / "mvtec")
    datamodule = AuxiliaryTransfer(auxiliary=AuxiliarySource("mvtec_ad", str(root)), num_workers=0)
    with pytest.raises(DatasetLayoutError, match=re.escape(expected.format(root=root))):
        datamodule.setup()


@pytest.mark.parametrize("generator", ["mvtec_ad", "visa", "folder", "normal_folder"])
def test_test_kit_and_demo_data_are_read_right_by_stock_anomalib(tmp_path: Path, generator: str) -> None:
    """By default the generators (the demo's too) write 8-bit RGB files: Anomalib reads them as the plugin does."""
    from anomalib.data.utils import read_image as anomalib_read_image

    from anomalib_glocalclip import testing
    from anomalib_glocalclip.data.checks import anomalib_reads_correctly, inspect_image_file
    from anomalib_glocalclip.data.io import read_image

    kwargs = {"n": 3} if generator == "normal_folder" else {}
    root = Path(getattr(testing, f"generate_{generator}")(tmp_path / generator, **kwargs))
    images = [path for path in root.rglob("*") if path.suffix.lower() in {".png", ".jpg", ".jpeg"}
              and "mask" not in str(path).lower() and "ground_truth" not in str(path)]
    assert len(images) >= 3
    for path in images:
        assert anomalib_reads_correctly(inspect_image_file(path)), path
        theirs = torch.from_numpy(anomalib_read_image(path)).permute(2, 0, 1).float()  # float64 in [0, 1]
        ours = read_image(path)
        assert torch.allclose(theirs, ours, atol=1e-6), path
        assert float(ours.std()) > 0.01, f"blank image {path}"


# ----- prompt files -----
def test_prompt_file_of_another_model_is_refused_by_name(tmp_path: Path) -> None:
    other = tmp_path / "winclip.ckpt"
    torch.save({"state_dict": {"model.clip.visual.proj": torch.zeros(2, 2)}}, other)
    with pytest.raises(PromptFileError, match=f"{other} holds no GlocalCLIP prompts"):
        GlocalCLIP(**TINY, prompt_weights=str(other))


def test_a_file_that_is_not_a_prompt_file_is_refused_by_name(tmp_path: Path) -> None:
    notes = tmp_path / "prompts.pt"
    notes.write_text("these are my notes\n")
    with pytest.raises(PromptFileError, match=f"Could not read prompt file {notes}: .*written by GlocalCLIP"):
        GlocalCLIP(**TINY, prompt_weights=str(notes))


def test_prompt_file_of_another_backbone_is_refused_by_name(tmp_path: Path) -> None:
    path = GlocalCLIP(**TINY).save_prompts(tmp_path / "prompts.pt")
    config = json.loads(TINY_CLIP_CONFIG.read_text())
    config["text_cfg"]["width"] *= 2
    config["text_cfg"]["heads"] = max(1, config["text_cfg"].get("heads", 1))
    wider = tmp_path / "wider-clip.json"
    wider.write_text(json.dumps(config))
    with pytest.raises(PromptFileError, match=f"Prompt file {path} does not fit this backbone"):
        GlocalCLIP(**{**TINY, "backbone": str(wider)}, prompt_weights=str(path))


def test_prompt_files_backbone_is_the_default(tmp_path: Path) -> None:
    path = GlocalCLIP(**TINY).save_prompts(tmp_path / "prompts.pt")
    without_backbone = {key: value for key, value in TINY.items() if key != "backbone"}
    assert GlocalCLIP(**without_backbone, prompt_weights=str(path)).backbone_name == str(TINY_CLIP_CONFIG)


# ----- how plugin errors end a command -----
def test_plugin_errors_are_recognised_through_their_causes() -> None:
    error = PromptFileError("Prompt file x.pt does not exist.\nPass the prompts.pt ...")
    outer = RuntimeError("wrapped")
    outer.__cause__ = error
    assert plugin_error_message(error) == str(error)
    assert plugin_error_message(outer) == str(error)
    assert plugin_error_message(ValueError("Prompt file x.pt does not exist.")) is None  # no record of messages


def test_plugin_command_ends_a_plugin_error_with_its_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import sys

    from anomalib_glocalclip import cli

    hook = sys.excepthook

    def fail(_argv: list[str]) -> int:
        message = "Image x.png cannot be read. Re-export it."
        raise PluginError(message)

    monkeypatch.setattr(cli, "run", fail)
    assert cli.main(["evaluate"]) == 1
    assert capsys.readouterr().err == "Error: Image x.png cannot be read. Re-export it.\n"
    monkeypatch.setenv(TRACEBACK_ENV, "1")
    with pytest.raises(PluginError, match=r"x\.png"):
        cli.main(["evaluate"])
    monkeypatch.setattr(cli, "run", lambda _argv: {}["bug"])
    monkeypatch.delenv(TRACEBACK_ENV)
    with pytest.raises(KeyError):  # other errors keep their traceback
        cli.main(["evaluate"])
    assert sys.excepthook is hook


# ----- through the anomalib CLI -----
WIDE_TRACEBACK = {"COLUMNS": "1000"}  # Anomalib's rich traceback wraps long lines at the terminal's width


@pytest.mark.slow
def test_cli_predict_on_a_folder_with_unreadable_files_exits_1(tmp_path: Path, cli) -> None:
    folder, contents = predict_folder(tmp_path)
    result = cli("anomalib", "predict", "--model", "GlocalCLIP", *TINY_CLI, "--data", str(folder),
                 "--trainer.accelerator", "cpu", "--default_root_dir", str(tmp_path / "results"), cwd=tmp_path,
                 env={"OMP_NUM_THREADS": "1", **WIDE_TRACEBACK})
    # Anomalib's command: Python's traceback, ending in the plugin's message.
    assert result.returncode != 0, result.stderr[-3000:]
    assert f"PredictFilesError: 3 image(s) of {folder} cannot be predicted" in result.stderr
    assert all(f"- Cannot read image {folder / name}" in result.stderr for name in UNREADABLE)
    assert not list((tmp_path / "results").rglob("predictions.csv"))
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == contents


@pytest.mark.slow
def test_cli_missing_weights_print_one_clear_message(tmp_path: Path, cli) -> None:
    folder = tmp_path / "images"
    save_rgb(folder / "a.png")
    result = cli("anomalib", "predict", "--model", "GlocalCLIP", "--model.backbone", "ViT-B-16",
                 "--model.pretrained", "openai", "--model.cache_dir", str(tmp_path / "empty_cache"),
                 "--data", str(folder), cwd=tmp_path, env={"ANOMALIB_GLOCALCLIP_OFFLINE": "1", **WIDE_TRACEBACK})
    # Anomalib's command: its own report (jsonargparse's, or Python's traceback) ends in the plugin's message.
    assert result.returncode != 0
    assert "CLIP weights 'ViT-B-16' / 'openai' are not available offline." in result.stderr
    assert f"Cache folder:  {tmp_path / 'empty_cache'}" in result.stderr
    assert "--model.pretrained /path/to/ViT-B-16.pt" in result.stderr
    assert not (tmp_path / "empty_cache").exists() or not any((tmp_path / "empty_cache").iterdir())


def test_predict_after_test_keeps_the_thresholds_without_the_natural_threshold_warning(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    root = generate_mvtec_ad(tmp_path / "mvtec", categories=("bottle",), n_train=1, n_test_good=2, n_test_bad=2)
    folder = tmp_path / "images"
    save_rgb(folder / "a.png")
    prompts = GlocalCLIP(**TINY).save_prompts(tmp_path / "prompts.pt")
    model = GlocalCLIP(**TINY, prompt_weights=str(prompts))  # zero-shot: Anomalib validates before test/predict
    engine = Engine(accelerator="cpu", logger=False, default_root_dir=tmp_path / "results", enable_progress_bar=False)
    engine.test(model, datamodule=MVTecAD(root=root, category="bottle", num_workers=0))
    thresholds = post_processor_thresholds(model.post_processor)
    with caplog.at_level(logging.INFO):
        engine.predict(model, data_path=folder)
    assert "natural thresholds" not in caplog.text
    assert "keeps the thresholds of its earlier validation" in caplog.text
    assert post_processor_thresholds(model.post_processor) == thresholds
