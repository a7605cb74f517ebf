"""``ExportGuard``: a model's export refused, with the reason, when it cannot be exported as configured."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from anomalib_glocalclip.utils.errors import PluginError


class ExportRefusedError(PluginError, RuntimeError):
    """The model cannot be exported as configured; the message says why and what to change."""


class ExportGuard:
    """Mixin before ``AnomalibModule``: Anomalib's exports, refused (:meth:`export_refusal`) or prepared first."""

    def export_refusal(self) -> str | None:
        """Why this model cannot be exported, or ``None`` if it can (subclasses override)."""
        return None

    def prepare_export(self) -> None:
        """Get ready for export (e.g. encode prompts); nothing by default."""

    def _guarded(self, export: Callable[..., Path]) -> Callable[..., Path]:
        reason = self.export_refusal()
        if reason is not None:
            raise ExportRefusedError(reason)
        self.prepare_export()
        return export

    def to_torch(self, *args: object, **kwargs: object) -> Path:
        """Export to a torch pickle; a model that refuses export raises ``ExportRefusedError`` saying why."""
        return self._guarded(super().to_torch)(*args, **kwargs)  # type: ignore[misc]

    def to_onnx(self, *args: object, **kwargs: object) -> Path:
        """Export to ONNX; a model that refuses export raises ``ExportRefusedError`` saying why."""
        return self._guarded(super().to_onnx)(*args, **kwargs)  # type: ignore[misc]

    def to_openvino(self, *args: object, **kwargs: object) -> Path:
        """Export to OpenVINO; a model that refuses export raises ``ExportRefusedError`` saying why."""
        return self._guarded(super().to_openvino)(*args, **kwargs)  # type: ignore[misc]
