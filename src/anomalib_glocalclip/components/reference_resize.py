"""The reference codes' PIL resize in torch: PIL's bicubic or bilinear for images, bilinear then ``> 0.5`` for masks.

GlocalCLIP's reference resizes 8-bit PIL images with ``Resize(S, BICUBIC)`` and masks with ``Resize(S)``
(bilinear); AnoCLIP's (hq-deng/AnoVL) both with ``Resize((S, S))``: bilinear. Each model class names its filter
(``reference_image_filter``). PIL resamples separably, width pass then height pass (Pillow up to 12), with the
filter stretched by the downscale factor, coefficients normalised per output pixel and rounded to 22-bit fixed
point, and rounds and clamps each pass to 8 bit; a tensor ``Resize`` keeps floats between passes and differs by
about 20 grey levels at sharp edges (anoclip/README.md "Faithfulness to the reference").

``pil_resize`` gives PIL's pixels (PIL's arithmetic, carried exactly by float64 products, cached matrices);
``pil_resize_dense`` builds the matrices inside the graph for export with dynamic sizes, within one grey level.
``ReferenceResize`` is a torchvision ``Resize`` (so Anomalib copies it into the datasets' augmentations) that
applies them to images in ``[0, 1]`` and to masks.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import InterpolationMode, Resize

PRECISION_BITS = 22  # PIL's fixed point for 8-bit images: 32 bits - 8 bits of value - 2 bits of headroom
FILTER_SUPPORT = {"bicubic": 2.0, "bilinear": 1.0}
BICUBIC_A = -0.5


def _filter_value(name: str, x: float) -> float:
    """PIL's filter at ``x`` (double precision, in PIL's order of operations)."""
    x = abs(x)
    if name == "bilinear":
        return 1.0 - x if x < 1.0 else 0.0
    if x < 1.0:
        return ((BICUBIC_A + 2.0) * x - (BICUBIC_A + 3.0)) * x * x + 1
    if x < 2.0:
        return (((x - 5) * x + 8) * x - 4) * BICUBIC_A
    return 0.0


def _fixed_point(coefficient: float) -> int:
    """A normalised coefficient in PIL's 22-bit fixed point (C's ``(int)`` cast: round half away from zero)."""
    scaled = coefficient * (1 << PRECISION_BITS)
    return int(scaled - 0.5) if scaled < 0 else int(scaled + 0.5)


@lru_cache(maxsize=32)
def pil_coefficients(in_size: int, out_size: int, filter_name: str) -> torch.Tensor:
    """PIL's resampling matrix from ``in_size`` to ``out_size`` pixels along one axis, ``[out_size, in_size]``.

    Coefficients are computed in double precision in PIL's order (a sequential sum for the normalisation) and
    rounded to PIL's 22-bit fixed point: float64 integers, ``2^22`` = weight 1.
    """
    scale = in_size / out_size
    filter_scale = max(scale, 1.0)
    support = FILTER_SUPPORT[filter_name] * filter_scale
    inverse_scale = 1.0 / filter_scale
    matrix = torch.zeros(out_size, in_size, dtype=torch.float64)
    for out in range(out_size):
        center = (out + 0.5) * scale
        first = max(int(center - support + 0.5), 0)
        stop = min(int(center + support + 0.5), in_size)
        values = [_filter_value(filter_name, (pos - center + 0.5) * inverse_scale) for pos in range(first, stop)]
        total = 0.0
        for value in values:
            total += value
        if total != 0.0:
            values = [value / total for value in values]
        matrix[out, first:stop] = torch.tensor([_fixed_point(value) for value in values], dtype=torch.float64)
    return matrix


def _resample(values: torch.Tensor, columns: torch.Tensor | None, rows: torch.Tensor | None) -> torch.Tensor:
    """PIL's two passes with fixed-point ``[out, in]`` matrices on float64 8-bit values, rounded to 8 bit.

    Every product and sum is an integer below ``2^31`` (PIL's int32 accumulator), so float64 holds it exactly.
    """
    half, one = float(1 << (PRECISION_BITS - 1)), float(1 << PRECISION_BITS)
    if columns is not None:
        values = torch.floor((values @ columns.T + half) / one).clamp(0.0, 255.0)
    if rows is not None:
        values = torch.floor((rows @ values + half) / one).clamp(0.0, 255.0)
    return values


def pil_resize(values: torch.Tensor, size: tuple[int, int], filter_name: str = "bicubic") -> torch.Tensor:
    """Resize 8-bit values exactly as PIL's ``Image.resize`` (width pass, then height pass).

    ``values``: ``[..., h, w]`` integers in ``[0, 255]`` (any dtype); returns ``[..., H, W]`` float64 PIL pixels.
    """
    height, width = size
    in_height, in_width = values.shape[-2:]
    device = values.device
    columns = pil_coefficients(in_width, width, filter_name).to(device) if in_width != width else None
    rows = pil_coefficients(in_height, height, filter_name).to(device) if in_height != height else None
    return _resample(values.to(torch.float64), columns, rows)


def _dense_filter(name: str, x: torch.Tensor) -> torch.Tensor:
    x = x.abs()
    if name == "bilinear":
        return (1.0 - x).clamp_min(0.0)
    near = ((BICUBIC_A + 2.0) * x - (BICUBIC_A + 3.0)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * BICUBIC_A
    return torch.where(x < 1.0, near, torch.where(x < 2.0, far, torch.zeros_like(x)))


def _dense_coefficients(like: torch.Tensor, in_size: int, out_size: int, filter_name: str) -> torch.Tensor:
    """``pil_coefficients`` from tensor operations only, so a dynamic ``in_size`` exports."""
    positions = torch.arange(in_size, dtype=torch.float64, device=like.device)
    scale = (positions[-1:] + 1.0) / out_size
    filter_scale = scale.clamp_min(1.0)
    centers = (torch.arange(out_size, dtype=torch.float64, device=like.device) + 0.5) * scale
    matrix = _dense_filter(filter_name, (positions[None, :] - centers[:, None] + 0.5) / filter_scale)
    scaled = matrix / matrix.sum(dim=1, keepdim=True) * float(1 << PRECISION_BITS)
    return torch.sign(scaled) * torch.floor(scaled.abs() + 0.5)


def pil_resize_dense(values: torch.Tensor, size: tuple[int, int], filter_name: str = "bicubic") -> torch.Tensor:
    """``pil_resize`` with the coefficients built inside the graph: exportable with dynamic input sizes.

    Both passes always run (a pass between equal sizes is the identity). The normalising sum is not PIL's
    sequential one, so a coefficient can round differently in its last fixed-point bit: within one grey level
    of PIL, and equal on nearly every pixel.
    """
    height, width = size
    columns = _dense_coefficients(values, values.shape[-1], width, filter_name)
    rows = _dense_coefficients(values, values.shape[-2], height, filter_name)
    return _resample(values.to(torch.float64), columns, rows)


class ReferenceResize(Resize):
    """A reference's PIL resize as a torchvision transform: ``image_filter`` images, bilinear ``> 0.5`` masks.

    Images (``[..., 3, h, w]`` in ``[0, 1]``) are quantised to 8 bit, resized and returned as ``value / 255`` (as
    ``ToTensor``); masks (``tv_tensors.Mask``, non-zero = anomalous) are resized as 0/255 images, in their dtype.

    Args:
        size: output ``(H, W)`` (or ``S`` for ``(S, S)``).
        exact: ``True``: ``pil_resize``; ``False``: ``pil_resize_dense`` (export with dynamic input sizes).
        image_filter: PIL filter of the images, ``"bicubic"`` (GlocalCLIP's reference) or ``"bilinear"`` (AnoCLIP's).
    """

    def __init__(
        self, size: int | tuple[int, int] | list[int], exact: bool = True, image_filter: str = "bicubic"
    ) -> None:
        if image_filter not in FILTER_SUPPORT:
            msg = f"image_filter must be one of {list(FILTER_SUPPORT)}, got {image_filter!r}."
            raise ValueError(msg)
        size = (size, size) if isinstance(size, int) else tuple(size)
        interpolation = InterpolationMode.BICUBIC if image_filter == "bicubic" else InterpolationMode.BILINEAR
        super().__init__(size, interpolation=interpolation, antialias=True)
        self.exact = exact
        self.image_filter = image_filter

    def _resize_values(self, values: torch.Tensor, filter_name: str) -> torch.Tensor:
        size = (self.size[0], self.size[1])
        if self.exact:
            return pil_resize(values, size, filter_name)
        return pil_resize_dense(values, size, filter_name)

    def resize_image(self, image: torch.Tensor) -> torch.Tensor:
        """``[..., h, w]`` image in ``[0, 1]`` -> ``[..., H, W]`` float32 PIL ``image_filter`` result in ``[0, 1]``."""
        values = torch.round(image.float().clamp(0.0, 1.0) * 255.0)
        return self._resize_values(values, self.image_filter).float() / 255.0

    def resize_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """``[..., h, w]`` mask (non-zero = anomalous) -> ``[..., H, W]`` mask, PIL bilinear then ``> 0.5``."""
        values = (mask != 0).to(torch.float64) * 255.0
        # value / 255 > 0.5 on 8-bit values is value >= 128.
        return (self._resize_values(values, "bilinear") >= 128).to(mask.dtype)

    def transform(self, inpt: object, params: dict[str, object]) -> object:
        """Resize an image or a mask; other inputs (boxes, ...) go to torchvision's ``Resize``."""
        if isinstance(inpt, tv_tensors.Mask):
            return tv_tensors.wrap(self.resize_mask(inpt.as_subclass(torch.Tensor)), like=inpt)
        if isinstance(inpt, tv_tensors.Image):
            return tv_tensors.wrap(self.resize_image(inpt.as_subclass(torch.Tensor)), like=inpt)
        if isinstance(inpt, torch.Tensor) and not isinstance(inpt, tv_tensors.TVTensor):  # plain (or traced) image
            return self.resize_image(inpt)
        return super().transform(inpt, params)

    def extra_repr(self) -> str:
        """Size, image filter and implementation."""
        return f"size={self.size}, image_filter={self.image_filter}, exact={self.exact}"
