"""The options of the local page: what it starts with and where it listens (``anomalib-glocalclip app`` parses them)."""

from __future__ import annotations

from dataclasses import dataclass

from .scoring import ModelChoice

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860


@dataclass(frozen=True)
class AppOptions:
    """How the page starts.

    Args:
        method: the method chosen when the page opens (``"AnoCLIP"`` or ``"GlocalCLIP"``).
        object_name: AnoCLIP's object name when the page opens.
        prompt_file: GlocalCLIP's prompt file when the page opens.
        backbone: open_clip model name or config file; ``None``: each method's default.
        weights: open_clip pretrained tag or local weight file; ``None``: each method's default.
        image_size: input size; ``None``: each method's default.
        tiny: the tiny random CLIP (offline; a banner says its scores mean nothing).
        host: address the server binds to; only the loopback address unless asked.
        port: port of the server; ``None``: the first free one from 7860 (gradio's choice).
        share: ask gradio for a public share link (off unless asked).
    """

    method: str = "AnoCLIP"
    object_name: str = "object"
    prompt_file: str | None = None
    backbone: str | None = None
    weights: str | None = None
    image_size: int | None = None
    tiny: bool = False
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
