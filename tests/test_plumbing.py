"""Shared plumbing (``anomalib_glocalclip.utils``): atomic writes, logging to a file, error descriptions."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from urllib.error import URLError

import pytest

from anomalib_glocalclip.utils.errors import NETWORK_HINT, describe_error
from anomalib_glocalclip.utils.files import atomic_path, atomic_write_json, atomic_write_text
from anomalib_glocalclip.utils.logs import log_to_file


def test_atomic_writes_create_folders_and_leave_no_temporary_file(tmp_path: Path) -> None:
    text_path = atomic_write_text(tmp_path / "a" / "b.md", "one\ntwo\n")
    json_path = atomic_write_json(tmp_path / "d.json", {"x": [1, 2]}, fsync=True)
    assert text_path.read_text(encoding="utf-8") == "one\ntwo\n"
    assert json_path.read_text(encoding="utf-8") == '{\n  "x": [\n    1,\n    2\n  ]\n}\n'
    assert sorted(path.name for path in tmp_path.rglob("*") if path.is_file()) == ["b.md", "d.json"]


def test_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path: Path) -> None:
    target = atomic_write_text(tmp_path / "result.json", "old")

    def write_half() -> None:
        with atomic_path(target) as temporary:
            temporary.write_text("half", encoding="utf-8")
            raise RuntimeError

    with pytest.raises(RuntimeError):
        write_half()
    with pytest.raises(ValueError, match="JSON compliant"):
        atomic_write_json(target, {"x": math.nan}, allow_nan=False)
    assert target.read_text(encoding="utf-8") == "old"
    assert [path.name for path in tmp_path.iterdir()] == ["result.json"]


def test_atomic_path_replaces_the_whole_file(tmp_path: Path) -> None:
    target = atomic_write_text(tmp_path / "table.csv", "a much longer old content\n")
    with atomic_path(target) as temporary:
        assert temporary.parent == target.parent
        assert temporary.name.startswith(".table.csv.")
        temporary.write_text("new\n", encoding="utf-8")
    assert json.dumps(target.read_text(encoding="utf-8")) == json.dumps("new\n")


def test_log_to_file_writes_one_logger_and_restores_it(tmp_path: Path) -> None:
    logger = logging.getLogger("anomalib_glocalclip.test_plumbing")
    other = logging.getLogger("somebody_else")
    handlers = list(logger.handlers)
    with log_to_file(tmp_path / "logs" / "run.log", logger_name=logger.name, log_format="%(levelname)s %(message)s"):
        assert logger.level == logging.INFO
        logger.debug("hidden")
        logger.info("kept %d", 1)
        other.warning("not this logger")
    logger.info("after the block")
    assert (tmp_path / "logs" / "run.log").read_text(encoding="utf-8") == "INFO kept 1\n"
    assert logger.level == logging.NOTSET
    assert logger.handlers == handlers


class LoggerRedirectError(Exception):
    """Stands for Anomalib's wrapper of errors raised inside its quiet blocks."""


def test_describe_error_is_one_line_with_the_root_cause() -> None:
    error = LoggerRedirectError("wrapped")
    error.__cause__ = ValueError("bad\n  value")
    assert describe_error(error) == "ValueError: bad value"
    assert describe_error(KeyError("x"), max_length=8) == "KeyError"


def test_describe_error_hints_at_missing_weights_on_network_failures() -> None:
    assert describe_error(URLError("[Errno -2] Name or service not known")).endswith(NETWORK_HINT)
    assert NETWORK_HINT not in describe_error(OSError("disk full"))


def test_model_entries_resolve_case_insensitively_and_unknown_names_list_the_known_ones() -> None:
    from anomalib_glocalclip.utils.model_config import resolve_class_path

    assert resolve_class_path("glocalclip") == "anomalib_glocalclip.glocalclip.lightning_model.GlocalCLIP"
    assert resolve_class_path("win_clip").endswith(".WinClip")
    assert resolve_class_path("my.module.Model") == "my.module.Model"
    with pytest.raises(ImportError, match=r"Unknown model 'nope'.*AnoCLIP.*GlocalCLIP"):
        resolve_class_path("nope")


def test_sweep_and_benchmark_build_a_config_model_alike(tmp_path: Path, tiny_config: Path) -> None:
    from anomalib_glocalclip.anoclip import AnoCLIP
    from anomalib_glocalclip.comparison.resolve import build_model
    from anomalib_glocalclip.evaluation import config_factory, sweep_evaluator

    init_args = {"backbone": str(tiny_config), "pretrained": None, "image_size": 64, "image_score_views": "none"}
    config = tmp_path / "anoclip.yaml"
    config.write_text(json.dumps({"model": {"class_path": "anoclip", "init_args": init_args}}), encoding="utf-8")
    evaluator = sweep_evaluator()
    swept = config_factory(config)(evaluator=evaluator)
    benchmarked = build_model({"class_path": "AnoCLIP", "init_args": init_args})
    assert type(swept) is type(benchmarked) is AnoCLIP
    assert swept.evaluator is evaluator
    assert benchmarked.visualizer is None
    assert swept.hparams == benchmarked.hparams
