"""Every use of a private API of Anomalib, Lightning, open_clip or Python, and the versions they hold for.

Each reach into a private name lives here, as a small function that says why, tested in ``tests/test_compat.py``.
``check_versions`` runs when a model is built, so an untested dependency version fails at once.

* ``set_post_processor_thresholds``: Anomalib's ``PostProcessor`` keeps its thresholds in the private
  buffers ``_image_threshold``/``_pixel_threshold`` (no setter; validation overwrites them).
* ``set_anomaly_sources``: ``PerlinAnomalyGenerator.anomaly_source_paths`` is set after construction, since
  the generator's own file search follows the file system's order.
* ``check_text_layout``: open_clip's text blocks take sequence-first ``[L, B, D]`` input up to 2.26; later
  versions switch to batch-first, which would silently mix tokens across prompts.
* ``compile_errors``: ``torch._dynamo.exc.TorchDynamoException``, the base of what ``torch.compile`` raises when it
  cannot trace or build a function (torch exports no public name for it); the compiled training step turns these
  into an error that names the ``compile`` argument. ``recompile_limit_errors``: ``FailOnRecompileLimitHit``, what a
  ``fullgraph`` function raises once dynamo's recompile limit is reached (the step then runs eagerly).
* ``inductor_cpu_kernel_profiling``: ``torch._inductor.config.cpp.enable_kernel_profile``, which makes the C++
  kernels inductor generates show in ``torch.profiler`` traces (the training benchmark counts them).
* ``open_clip_cached_weights``: open_clip has no public look-up of its download cache that stays off the network
  (``download_pretrained`` downloads what is missing), which the offline switch and the missing-weights message need.
* ``silence_log_message``: Anomalib's adaptive threshold warns through a log line, with no flag to turn it off.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch
from packaging.version import Version

SUPPORTED_VERSIONS = {
    "anomalib": ("2.7.0", "2.8.0"),  # [min, max): 2.7.x
    "open_clip_torch": ("2.23.0", "2.26.1"),  # 2.26.1 breaks Anomalib's ONNX export and changes the text layout
    "lightning": ("2.6.0", "2.7.0"),
}
EXCLUDED_VERSIONS = {"lightning": ("2.6.2", "2.6.3")}  # broken checkpoint loading with Anomalib 2.7


class UnsupportedVersionError(ImportError):
    """A dependency is installed in a version the plugin does not support."""


def check_versions(installed: dict[str, str] | None = None) -> None:
    """Fail with the fix when Anomalib, open_clip or Lightning is outside the versions the plugin supports.

    Args:
        installed: distribution name -> version, for tests; ``None``: the installed versions.

    Raises:
        UnsupportedVersionError: naming the package, its version and the supported range.
    """
    problems = []
    for name, (low, high) in SUPPORTED_VERSIONS.items():
        found = installed.get(name) if installed is not None else _installed_version(name)
        if found is None:
            continue
        parsed = Version(found)
        if not Version(low) <= parsed < Version(high) or found in EXCLUDED_VERSIONS.get(name, ()):
            excluded = EXCLUDED_VERSIONS.get(name, ())
            not_these = f", not {'/'.join(excluded)}" if excluded else ""
            problems.append(f"{name} {found} (supported: >={low},<{high}{not_these})")
    if problems:
        msg = (
            "anomalib-glocalclip does not support " + "; ".join(problems)
            + ". Install supported versions, e.g. `pip install 'anomalib>=2.7,<2.8' 'open-clip-torch<2.26.1' "
            "'lightning>=2.6,!=2.6.2,!=2.6.3,<2.7'`."
        )
        raise UnsupportedVersionError(msg)


def _installed_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def set_post_processor_thresholds(post_processor: Any, image: float, pixel: float) -> None:
    """Set Anomalib ``PostProcessor``'s image and pixel thresholds (private buffers: there is no setter)."""
    post_processor._image_threshold.fill_(image)  # noqa: SLF001
    post_processor._pixel_threshold.fill_(pixel)  # noqa: SLF001


def post_processor_thresholds(post_processor: Any) -> tuple[float, float]:
    """Anomalib ``PostProcessor``'s image and pixel thresholds (read from its private buffers)."""
    return post_processor._image_threshold.item(), post_processor._pixel_threshold.item()  # noqa: SLF001


def set_anomaly_sources(generator: Any, paths: Sequence[Path]) -> None:
    """Give Anomalib's ``PerlinAnomalyGenerator`` its texture files in our order (no constructor argument for it)."""
    generator.anomaly_source_paths = list(paths)


def check_text_layout(transformer: torch.nn.Module) -> None:
    """Fail clearly unless open_clip's text blocks take sequence-first ``[L, B, D]`` input (open_clip < 2.26.1).

    Raises:
        UnsupportedVersionError: the text transformer is batch-first.
    """
    if getattr(transformer, "batch_first", False):
        msg = (
            "This open_clip text transformer is batch-first; anomalib-glocalclip feeds its blocks [L, B, D] "
            "tokens. Install open-clip-torch<2.26.1."
        )
        raise UnsupportedVersionError(msg)


def compile_errors() -> tuple[type[BaseException], ...]:
    """Exception types ``torch.compile``d functions raise when dynamo or the backend fails (tracing, compiling)."""
    from torch._dynamo.exc import TorchDynamoException

    return (TorchDynamoException,)


@contextlib.contextmanager
def inductor_cpu_kernel_profiling() -> Iterator[None]:
    """Within: C++ kernels that inductor compiles (for the CPU) record themselves in ``torch.profiler`` traces."""
    import torch._inductor.config as inductor_config

    with inductor_config.patch({"cpp.enable_kernel_profile": True}):
        yield


def recompile_limit_errors() -> tuple[type[BaseException], ...]:
    """Exception type a ``fullgraph`` compiled function raises when its recompile limit is reached (none if unknown)."""
    from torch._dynamo import exc

    limit_hit = getattr(exc, "FailOnRecompileLimitHit", None)
    return (limit_hit,) if limit_hit is not None else ()


class _DropMessage(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


@contextlib.contextmanager
def silence_log_message(logger_name: str, text: str, active: bool = True) -> Iterator[None]:
    """Drop the records of ``logger_name`` containing ``text`` while ``active`` (for warnings with no switch)."""
    target = logging.getLogger(logger_name)
    log_filter = _DropMessage(text)
    if active:
        target.addFilter(log_filter)
    try:
        yield
    finally:
        target.removeFilter(log_filter)


def open_clip_cached_weights(pretrained_config: dict[str, str], cache_dir: str | None) -> tuple[Path | None, Path]:
    """The file open_clip's ``download_pretrained`` would return without downloading (``None``: none), and its folder.

    open_clip keeps a URL's file as ``<cache_dir or ~/.cache/clip>/<the URL's file name>``, a Hugging Face file in
    the hub's cache.
    """
    url = pretrained_config.get("url", "")
    if url:
        folder = Path(cache_dir or "~/.cache/clip").expanduser()
        path = folder / Path(url).name
        return (path if path.is_file() else None), folder
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.constants import HF_HUB_CACHE

    model_id, file_name = os.path.split(pretrained_config.get("hf_hub", ""))
    cached = try_to_load_from_cache(model_id, file_name or "open_clip_pytorch_model.bin", cache_dir=cache_dir)
    return (Path(cached) if isinstance(cached, str) else None), Path(cache_dir or HF_HUB_CACHE)
