"""Each private API the plugin uses still exists and behaves as ``compat`` relies on."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from anomalib.data.utils.generators.perlin import PerlinAnomalyGenerator
from anomalib.post_processing import PostProcessor

from anomalib_glocalclip import compat


def test_installed_versions_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """The installed versions lie inside the supported ranges, and the default check reads them."""
    from importlib.metadata import version

    from packaging.version import Version

    for name, (low, high) in compat.SUPPORTED_VERSIONS.items():
        found = version(name)
        assert Version(low) <= Version(found) < Version(high), (name, found)
        assert found not in compat.EXCLUDED_VERSIONS.get(name, ()), (name, found)
    compat.check_versions()
    # The same call with no arguments must read the installed metadata: a too-new anomalib there fails it.
    real = compat.version
    monkeypatch.setattr(compat, "version", lambda name: "2.8.0" if name == "anomalib" else real(name))
    with pytest.raises(compat.UnsupportedVersionError, match=r"anomalib 2\.8\.0 "):
        compat.check_versions()


@pytest.mark.parametrize(
    ("name", "bad"),
    [("anomalib", "2.8.0"), ("anomalib", "2.6.9"), ("open_clip_torch", "2.26.1"), ("lightning", "2.6.2")],
)
def test_unsupported_versions_fail_with_the_fix(name: str, bad: str) -> None:
    good = {"anomalib": "2.7.0", "open_clip_torch": "2.24.0", "lightning": "2.6.6"}
    compat.check_versions(good)
    with pytest.raises(compat.UnsupportedVersionError, match=rf"{name} {bad} .*pip install"):
        compat.check_versions({**good, name: bad})


def test_post_processor_thresholds_round_trip() -> None:
    post_processor = PostProcessor()
    compat.set_post_processor_thresholds(post_processor, image=0.25, pixel=3.0)
    assert compat.post_processor_thresholds(post_processor) == (0.25, 3.0)
    assert post_processor.image_threshold == 0.25  # Anomalib's public read of the same buffer


def test_perlin_sources_are_the_given_list(tmp_path: Path) -> None:
    generator = PerlinAnomalyGenerator(anomaly_source_path=None)
    paths = [tmp_path / "b.png", tmp_path / "a.png"]
    compat.set_anomaly_sources(generator, paths)
    assert generator.anomaly_source_paths == paths


def test_text_layout_check() -> None:
    class BatchFirst(torch.nn.Module):
        batch_first = True

    compat.check_text_layout(torch.nn.Module())
    with pytest.raises(compat.UnsupportedVersionError, match=r"open-clip-torch<2\.26\.1"):
        compat.check_text_layout(BatchFirst())


def test_open_clip_cached_weights_is_what_open_clip_returns_without_downloading(tmp_path: Path) -> None:
    from open_clip.pretrained import download_pretrained

    config = {"url": "https://example.invalid/weights/model.bin"}  # no checksum in the URL: the file is taken as is
    assert compat.open_clip_cached_weights(config, str(tmp_path)) == (None, tmp_path)
    (tmp_path / "model.bin").write_bytes(b"weights")
    cached, folder = compat.open_clip_cached_weights(config, str(tmp_path))
    assert cached == Path(download_pretrained(config, cache_dir=str(tmp_path)))  # found, so nothing is downloaded
    assert folder == tmp_path
    hub_config = {"hf_hub": "someone/not-cached-model/"}
    assert compat.open_clip_cached_weights(hub_config, str(tmp_path)) == (None, tmp_path)


def test_silence_log_message_drops_only_the_given_text(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("anomalib_glocalclip.test_compat")
    with caplog.at_level(logging.WARNING), compat.silence_log_message(log.name, "drop me"):
        log.warning("please drop me")
        log.warning("keep me")
    log.warning("drop me later")
    assert [record.getMessage() for record in caplog.records] == ["keep me", "drop me later"]


def test_compile_errors_catch_a_failing_backend() -> None:
    def broken_backend(graph: torch.fx.GraphModule, example_inputs: list) -> object:
        msg = "backend failed"
        raise RuntimeError(msg)

    compiled = torch.compile(lambda x: x.sin() + 1, backend=broken_backend)
    with pytest.raises(compat.compile_errors(), match="backend failed"):
        compiled(torch.ones(2))


def test_inductor_cpu_kernels_show_in_profiles() -> None:
    from torch.profiler import ProfilerActivity, profile

    compiled = torch.compile(lambda x: (x.sin() + 1).cos(), backend="inductor")
    with compat.inductor_cpu_kernel_profiling():
        compiled(torch.ones(8))
        with profile(activities=[ProfilerActivity.CPU]) as trace:
            compiled(torch.ones(8))
    assert any("cpp_fused" in event.name for event in trace.events())


def test_recompile_limit_error_exists() -> None:
    (limit_hit,) = compat.recompile_limit_errors()
    assert issubclass(limit_hit, Exception)




def test_building_a_model_checks_the_versions(monkeypatch: pytest.MonkeyPatch, tiny_config: Path) -> None:
    from anomalib_glocalclip.anoclip.lightning_model import AnoCLIP

    real = compat.version
    monkeypatch.setattr(compat, "version", lambda name: "2.6.2" if name == "lightning" else real(name))
    with pytest.raises(compat.UnsupportedVersionError, match=r"lightning 2\.6\.2 .*pip install"):
        AnoCLIP(backbone=str(tiny_config), pretrained=None, image_size=64)
