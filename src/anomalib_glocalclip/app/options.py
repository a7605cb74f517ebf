"""The options of the local page: what it starts with and where it listens (``anomalib-glocalclip app`` parses them)."""

from __future__ import annotations

from dataclasses import dataclass

from .scoring import ModelChoice

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860


@dataclass(frozen=True)
class AppOptions(ModelChoice):
    """How the page starts: the model chosen when it opens (``ModelChoice``'s fields), and its server.

    Args:
        host: address the server binds to; only the loopback address unless asked.
        port: port of the server; ``None``: the first free one from 7860 (gradio's choice).
        share: ask gradio for a public share link (off unless asked).
    """

    host: str = DEFAULT_HOST
    port: int | None = DEFAULT_PORT
    share: bool = False

    def choice(
        self,
        method: str | None = None,
        object_name: str | None = None,
        prompt_file: str | None = None,
        weights: str | None = None,
        reference_images: str | None = None,
    ) -> ModelChoice:
        """The model chosen on the page: these options, with what the page's fields say where they say something."""
        return ModelChoice(
            method=method or self.method,
            object_name=(object_name or "").strip() or self.object_name,
            prompt_file=(prompt_file or "").strip() or self.prompt_file,
            backbone=self.backbone,
            weights=(weights or "").strip() or self.weights,
            image_size=self.image_size,
            tiny=self.tiny,
            reference_images=reference_images,
        )
