"""The local page's scoring (``app/scoring.py``), its handlers and its command, on the tiny random CLIP."""

from __future__ import annotations

import csv
import importlib.util
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anomalib_glocalclip.app import AppInputError, AppOptions, ImageResult, ModelCache, ModelChoice, decide
from anomalib_glocalclip.app.scoring import (
    ANOMALOUS,
    CSV_COLUMNS,
    NORMAL,
    SETTING_COLUMNS,
    UNREADABLE,
    image_inputs,
    image_paths_in,
    model_settings,
    model_threshold,
    reference_folder,
    result_rows,
    score_images,
    unique_names,
    write_csv,
    write_heatmap_zip,
)
from anomalib_glocalclip.components.heatmap_overlay import HEATMAP_MAX_SIDE
from anomalib_glocalclip.demo.products import make_image

TINY = ModelChoice(tiny=True, object_name="bottle")


@pytest.fixture(scope="module")
def cache() -> ModelCache:
    """One cache for the module: the tiny AnoCLIP is built once."""
    return ModelCache()


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    """A product image (odd size), a 16-bit grayscale image, and a file that is not an image."""
    rng = np.random.default_rng(0)
    product = tmp_path / "product.png"
    Image.fromarray(make_image(rng, (90, 70), "bottle", anomalous=True)[0]).save(product)
    gray16 = tmp_path / "gray16.png"
    Image.fromarray(rng.integers(0, 65536, (64, 64), dtype=np.uint16)).save(gray16)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"this is not a PNG")
    return [product, broken, gray16]


def test_decide_re_decides_from_kept_scores() -> None:
    results = [ImageResult("a.png", "a.png", score=0.2), ImageResult("b.png", "b.png", score=0.7),
               ImageResult("c.png", "c.png", error="unreadable file")]
    assert decide(results, 0.5) == [NORMAL, ANOMALOUS, UNREADABLE]
    assert decide(results, 0.1) == [ANOMALOUS, ANOMALOUS, UNREADABLE]
    assert decide(results, 0.7) == [NORMAL, NORMAL, UNREADABLE]  # anomalous strictly above, as Anomalib decides
    assert [row[2] for row in result_rows(results, 0.1)] == [ANOMALOUS, ANOMALOUS, UNREADABLE]


def test_score_images_names_the_broken_file_and_scores_the_others(cache, files, tmp_path: Path) -> None:
    model = cache.get(TINY)
    progress: list[tuple[int, int]] = []
    results = score_images(model, files, tmp_path / "maps", batch_size=2,
                           on_progress=lambda done, total: progress.append((done, total)))
    assert [result.name for result in results] == ["product.png", "broken.png", "gray16.png"]
    assert results[1].score is None
    assert results[1].heatmap is None
    assert "broken.png" in results[1].error
    assert str(files[1].parent) not in results[1].error  # the file by its name: no (temporary) folder
    assert progress == [(2, 3), (3, 3)]
    for result, size in ((results[0], (70, 90)), (results[2], (64, 64))):
        assert 0.0 <= result.score <= 1.0
        with Image.open(result.heatmap) as heatmap:
            assert heatmap.size == size
            assert heatmap.mode == "RGB"


def test_scores_do_not_depend_on_batching(cache, files, tmp_path: Path) -> None:
    model = cache.get(TINY)
    one = score_images(model, files, tmp_path / "one", batch_size=1)
    all_at_once = score_images(model, files, tmp_path / "all", batch_size=8)
    assert [r.score for r in one] == pytest.approx([r.score for r in all_at_once], abs=1e-5)


def test_large_images_get_heatmaps_of_the_capped_size(cache, tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    Image.new("RGB", (HEATMAP_MAX_SIDE * 2, 64), (128, 64, 32)).save(path)
    (result,) = score_images(cache.get(TINY), [path], tmp_path / "maps")
    with Image.open(result.heatmap) as heatmap:
        assert heatmap.size == (HEATMAP_MAX_SIDE, 32)


def test_csv_and_zip_hold_every_result_and_what_produced_it(cache, files, tmp_path: Path) -> None:
    model = cache.get(TINY)
    results = score_images(model, files, tmp_path / "maps")
    threshold = (results[0].score + results[2].score) / 2
    settings = model_settings(TINY, model, reference_names=["n1.png", "n2.png"])
    with write_csv(results, threshold, tmp_path / "results.csv", settings).open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert {column: rows[1][column] for column in SETTING_COLUMNS} == {
        "method": "AnoCLIP", "backbone": "tiny-clip", "weights": "random (tiny CLIP): scores mean nothing",
        "prompt file": "", "references": "n1.png; n2.png"}
    assert float(rows[2]["threshold"]) == threshold
    assert [row["file"] for row in rows] == ["product.png", "broken.png", "gray16.png"]
    assert [row["decision"] for row in rows] == decide(results, threshold)
    assert {row["decision"] for row in rows} == {ANOMALOUS, NORMAL, UNREADABLE}
    assert float(rows[0]["score"]) == results[0].score
    assert rows[1]["score"] == ""
    assert "broken.png" in rows[1]["error"]
    with zipfile.ZipFile(write_heatmap_zip(results, tmp_path / "heatmaps.zip")) as archive:
        assert sorted(archive.namelist()) == ["gray16.png.jpg", "product.png.jpg"]
        assert archive.read("product.png.jpg") == Path(results[0].heatmap).read_bytes()


def test_model_cache_builds_once_per_choice() -> None:
    built: list[ModelChoice] = []
    cache = ModelCache(size=2, build=lambda choice: built.append(choice) or object())
    first = cache.get(TINY)
    assert cache.get(ModelChoice(tiny=True, object_name="bottle")) is first  # an equal choice: the same model
    other = cache.get(ModelChoice(tiny=True, object_name="screw"))
    assert other is not first
    assert cache.builds == 2
    cache.get(TINY)  # still kept; now the most recently used
    cache.get(ModelChoice(tiny=True, method="GlocalCLIP"))  # evicts "screw", the least recently used
    assert cache.get(TINY) is first
    assert cache.builds == 3
    cache.get(ModelChoice(tiny=True, object_name="screw"))
    assert cache.builds == 4
    assert built[-1].object_name == "screw"


def test_real_cache_returns_the_built_model(cache) -> None:
    builds = cache.builds
    model = cache.get(TINY)
    assert cache.get(ModelChoice(tiny=True, object_name="bottle")) is model
    assert cache.builds == max(builds, 1)
    assert model.model.has_prompts
    assert not model.training


def test_few_shot_choice_fills_the_reference_bank(files, tmp_path: Path) -> None:
    normals = [files[0], files[2]]
    folder = reference_folder(normals, tmp_path / "work")
    assert reference_folder(normals, tmp_path / "work") == folder  # content-addressed: the same model is reused
    model = ModelCache().get(ModelChoice(tiny=True, reference_images=str(folder)))
    assert model.is_few_shot
    assert model.few_shot == 2
    assert sorted(Path(path).name for path in model.reference_paths) == ["0_product.png", "1_gray16.png"]
    assert not model.model.reference_bank.is_empty


def test_bad_inputs_are_refused_with_a_message(files, tmp_path: Path) -> None:
    with pytest.raises(AppInputError, match="1 to 8 normal images"):
        reference_folder([files[0]] * 9, tmp_path)
    with pytest.raises(AppInputError, match="Image folder not found"):
        image_paths_in(tmp_path / "missing")
    with pytest.raises(AppInputError, match="Drop one or more images"):
        image_inputs([], None)
    assert image_paths_in(files[0].parent) == sorted([files[0], files[1], files[2]])


def test_unique_names_number_repeats_without_taking_a_given_name() -> None:
    assert unique_names(["a.png", "b.png", "a.png", "a (2).png", "a.png"]) == [
        "a.png", "b.png", "a (3).png", "a (2).png", "a (4).png"]
    assert unique_names(["good/0.png", "good/0.png"]) == ["good/0.png", "good/0 (2).png"]


def test_image_inputs_name_files_by_relative_path_and_score_duplicates_once(tmp_path: Path) -> None:
    folder, uploads = tmp_path / "folder", tmp_path / "uploads"
    for sub, shade in (("good", 10), ("crack", 200), ("crack/deep", 90), (".hidden", 50)):
        (folder / sub).mkdir(parents=True)
        Image.new("RGB", (8, 8), (shade, 0, 0)).save(folder / sub / "000.png")
    (folder / "copy.png").write_bytes((folder / "good" / "000.png").read_bytes())
    for sub, shade in (("x", 1), ("y", 2)):  # two uploads of one name, different content (gradio's folders)
        (uploads / sub).mkdir(parents=True)
        Image.new("RGB", (8, 8), (0, shade, 0)).save(uploads / sub / "000.png")
    same = str(uploads / "x" / "000.png")
    results = image_inputs([same, str(uploads / "y" / "000.png"), same], folder)
    assert [(result.name, result.same_as) for result in results] == [
        ("000.png", ["000 (3).png"]),  # the same upload twice: scored once, the other named
        ("000 (2).png", []),
        ("copy.png", ["good/000.png"]),  # equal content: the first in the folder's order is scored
        ("crack/000.png", []),
        ("crack/deep/000.png", []),
    ]
    assert results[3].path == str(folder / "crack" / "000.png")
    assert image_inputs([], folder / "crack")[1].name == "deep/000.png"


def test_model_threshold_is_the_post_processors(cache) -> None:
    model = cache.get(TINY)
    assert model_threshold(model) == pytest.approx(float(model.post_processor.image_threshold))


# ----- the page's handlers (gradio needed to import the page module) -----
def _handlers(tmp_path: Path, cache: ModelCache, options: AppOptions):
    page = pytest.importorskip("anomalib_glocalclip.app.page")
    return page, page.Handlers(options, cache, tmp_path)


def _no_progress(*args: object, **kwargs: object) -> None:
    del args, kwargs


def _score(handlers, *, method="AnoCLIP", prompt=None, weights="", images=None, folder="", normals=None,
           threshold=0.5, last=None) -> list[tuple]:
    return list(handlers.score(method, "bottle", "", prompt, weights, images, folder, normals, threshold, last))


def test_handler_errors_speak_the_pages_words_and_keep_earlier_results(cache, files, tmp_path: Path) -> None:
    page, handlers = _handlers(tmp_path, cache, AppOptions())
    upload = tmp_path / "gradio" / "0123abcd" / "ViT-B-16-plus-240.pt"
    *_, last = _score(handlers, weights=str(upload), images=[str(files[0])])
    message = last[3]
    assert message.startswith("**Error:** CLIP weight file")
    assert "*CLIP weights*" in message
    assert "--" not in message
    assert "null" not in message
    assert all(value == {"__type__": "update"} for index, value in enumerate(last) if index != 3)  # results kept
    prompts = tmp_path / "gradio" / "77ff" / "prompts.pt"
    prompts.parent.mkdir(parents=True)
    prompts.write_bytes(b"not a prompt file")
    *_, last = _score(handlers, method="GlocalCLIP", prompt=str(prompts), images=[str(files[0])])
    assert last[3] == ("**Error:** Could not read prompt file prompts.pt. Is it complete and written by GlocalCLIP? "
                       "Give the prompt file (prompts.pt) a GlocalCLIP training run wrote, or choose AnoCLIP.")
    from anomalib_glocalclip.backbone import WeightsNotFoundError

    offline = WeightsNotFoundError("CLIP weights 'B' / 't' are not available offline.\n  Cache folder:  /c\n"
                                   "Fix: put it there, or pass --model.pretrained /x.pt.")
    assert page.error_message(offline, {}) == (
        "**Error:** CLIP weights 'B' / 't' are not available offline. Cache folder: /c. In *CLIP weights*, give the "
        "path of a weight file on this machine or an open_clip tag whose file is in the cache folder; leave it "
        "empty for the method's default.")
    unexpected = page.error_message(IndexError("pop from empty list"), {})
    assert "pop from empty list" not in unexpected
    assert "IndexError" in unexpected
    assert "Score again" in unexpected


def test_handler_scores_redecides_and_reports_unreadable_files(cache, files, tmp_path: Path) -> None:
    _page, handlers = _handlers(tmp_path, cache, AppOptions(tiny=True))
    *progress, (state, gallery, table, message, downloads, threshold, colour_bar) = _score(
        handlers, images=[str(files[0]), str(files[1])], folder=str(files[2].parent), threshold=1.0)
    assert [step[3] for step in progress] == ["Building the model (once per choice)...", "Scored 3 of 3 images..."]
    assert threshold == model_threshold(cache.get(TINY))  # a new model: its own threshold
    assert len(gallery) == 2  # product.png (dropped, and the folder's copy: scored once) and gray16.png
    assert "broken.png" in message
    assert "**product (2).png**: the same content as **product.png**" in message
    assert "**broken (2).png**: the same content as **broken.png**" in message
    assert [row[2] for row in table].count(UNREADABLE) == 1
    assert [Path(path).name for path in downloads] == ["results.csv", "heatmaps.zip"]
    assert "one scale for every heatmap" in colour_bar
    gallery, table, message, downloads = handlers.redecide(state, 0.0)
    assert all(ANOMALOUS in caption for _, caption in gallery)
    assert "broken.png" in message
    with Path(downloads[0]).open(newline="") as file:
        assert [row["threshold"] for row in csv.DictReader(file)] == ["0.0"] * 3  # the folder's copies scored once
    assert handlers.redecide(None, 0.3) == ([], [], "", None)
    *_, rerun = _score(handlers, images=[str(files[0])], threshold=0.123, last=state)
    assert rerun[5] == 0.123  # the same model again: the user's threshold stays
    *_, last = _score(handlers)
    assert last[3] == "**Error:** Drop one or more images, or give the path of a folder of images."


def test_glocalclip_without_prompt_file_says_so_and_names_the_readme_section(tmp_path: Path, files) -> None:
    from anomalib_glocalclip.app.scoring import PROMPTS_SECTION

    _page, handlers = _handlers(tmp_path, ModelCache(), AppOptions(tiny=True))
    *_, last = _score(handlers, method="GlocalCLIP", images=[str(files[0])])
    assert "untrained prompts" in last[3]
    assert PROMPTS_SECTION in last[3]
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    for section in ("Learn prompts from your own normal images", "1. Learn prompts on auxiliary data"):
        assert f"{section}\n" in readme
        assert section in PROMPTS_SECTION
    with Path(last[4][0]).open(newline="") as file:
        assert next(csv.DictReader(file))["prompt file"] == "none: untrained prompts"


# ----- the command -----
def test_command_without_gradio_says_how_to_install(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from anomalib_glocalclip.cli import app as command

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else find_spec(name, *a))
    assert command.main(["--tiny"]) == 1
    assert 'pip install "anomalib-glocalclip[app]"' in capsys.readouterr().err


def test_command_serves_locally_and_privately_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("gradio")
    from anomalib_glocalclip.app import page
    from anomalib_glocalclip.cli import app as command

    served: list[AppOptions] = []
    monkeypatch.setattr(page, "serve", served.append)
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "unset")  # restored after the test
    monkeypatch.delenv("GRADIO_ANALYTICS_ENABLED")
    assert command.main(["--tiny", "--port", "7999", "--object", "screw"]) == 0
    (options,) = served
    assert (options.host, options.port, options.share, options.tiny) == ("127.0.0.1", 7999, False, True)
    assert options.choice().object_name == "screw"
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"
    assert command.main(["--model", "glocalclip", "--prompts", "p.pt", "--share", "--host", "0.0.0.0"]) == 0  # noqa: S104
    assert (served[1].method, served[1].prompt_file, served[1].share, served[1].host) == (
        "GlocalCLIP", "p.pt", True, "0.0.0.0")  # noqa: S104


def test_app_help_imports_neither_torch_nor_gradio(cli) -> None:
    code = (
        "import sys\n"
        "from anomalib_glocalclip.cli import main\n"
        "try:\n    main(['app', '--help'])\nexcept SystemExit as exit:\n    assert exit.code == 0, exit.code\n"
        "print('HEAVY', sorted(name for name in ('torch', 'anomalib', 'gradio') if name in sys.modules))\n"
    )
    result = cli("python", "-c", code)
    assert result.returncode == 0, result.stderr
    assert "--share" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "HEAVY []"
