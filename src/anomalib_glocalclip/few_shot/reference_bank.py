"""A bank of normal reference patch features and each test patch's cosine distance to its nearest reference.

The bank holds the L2-normalised patch features of the ``K`` reference images at each of the ``L`` layers the
zero-shot maps use, ``[L, K * N, E]``, as one persistent buffer: checkpoints and exported graphs carry it. The
nearest-neighbour search runs on the bank's device in chunks, so that no similarity matrix holds more than
``max_elements`` entries, whatever the batch and the bank size.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from anomalib_glocalclip.backbone.precision import check_precision

DEFAULT_MAX_ELEMENTS = 2**26
"""Default budget of one similarity matrix: 64 Mi entries, 128 MiB in bf16."""


def bank_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The dtype a bank of ``precision`` is stored and searched in on ``device``.

    ``bf16`` is bfloat16 everywhere, ``fp32`` float32 everywhere and ``auto`` (the backbone's default) bfloat16 on
    CUDA, which halves the bank's memory and traffic, and float32 elsewhere (CPUs and exports).
    """
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return torch.float32


class ReferenceBank(nn.Module):
    """Patch features of normal reference images, per layer, and nearest-neighbour distances to them.

    The bank starts empty; :meth:`add` fills it. Loading a state dict resizes the buffer to the stored bank; its
    dtype always follows ``precision`` and the device (:func:`bank_dtype`), also after ``.to(...)`` and loading.

    Args:
        max_elements: most entries of one ``[queries, bank patches]`` similarity matrix in eager mode.
        precision: ``auto``, ``bf16`` or ``fp32``, as the backbone's; distances are returned and averaged in
            float32 whatever the bank's dtype.
    """

    def __init__(self, max_elements: int = DEFAULT_MAX_ELEMENTS, precision: str = "auto") -> None:
        super().__init__()
        if max_elements < 1:
            msg = f"max_elements must be positive, got {max_elements}."
            raise ValueError(msg)
        self.max_elements = max_elements
        self.precision = check_precision(precision)
        empty = torch.empty(0, 0, 0, dtype=bank_dtype(self.precision, torch.device("cpu")))
        self.register_buffer("features", empty)  # [L, K * N, E]

    @property
    def storage_dtype(self) -> torch.dtype:
        """The dtype of the bank on its current device."""
        return bank_dtype(self.precision, self.features.device)

    @property
    def is_empty(self) -> bool:
        """Whether the bank holds no reference patch (zero-shot)."""
        return self.features.numel() == 0

    @property
    def num_layers(self) -> int:
        """``L``, the number of feature layers (0 while empty)."""
        return self.features.shape[0]

    @property
    def num_patches(self) -> int:
        """``K * N``, reference patches per layer (0 while empty)."""
        return self.features.shape[1]

    @torch.no_grad()
    def add(self, patch_features: torch.Tensor) -> None:
        """Append ``[L, B, N, E]`` patch features of ``B`` normal images (normalised, stored in the bank's dtype).

        Raises:
            ValueError: the features are not 4-D, or their layer count or width differs from the bank's.
        """
        if patch_features.dim() != 4:
            shape = list(patch_features.shape)
            msg = f"Reference patch features must be [layers, images, patches, width], got {shape}."
            raise ValueError(msg)
        layers, _, _, width = patch_features.shape
        if not self.is_empty and (layers, width) != (self.num_layers, self.features.shape[2]):
            msg = (
                f"Reference patch features have {layers} layers of width {width}, but the bank holds "
                f"{self.num_layers} layers of width {self.features.shape[2]}; use the same model and feature layers."
            )
            raise ValueError(msg)
        # Lightning runs evaluation under inference mode; the buffer must stay a normal tensor so that
        # load_state_dict can later update it in place.
        with torch.inference_mode(mode=False):
            new = F.normalize(patch_features.flatten(1, 2).float(), dim=-1)
            new = new.to(device=self.features.device, dtype=self.storage_dtype).clone()
            self.features = new if self.is_empty else torch.cat([self.features, new], dim=1)

    def clear(self) -> None:
        """Empty the bank (back to zero-shot)."""
        self.features = self.features.new_empty(0, 0, 0)

    def nearest_distance(self, patch_features: torch.Tensor) -> torch.Tensor:
        """Cosine distance of each patch to its nearest reference patch, averaged over layers.

        ``d[b, n] = mean_l (1 - max_m cos(x[l, b, n], bank[l, m]))`` in ``[0, 2]``, float32 ``[B, N]``, of test patch
        features ``[L, B, N, E]`` (any norm). Similarities are computed in the bank's dtype, one layer and chunk at a
        time (at most ``max_elements`` entries; under ``torch.export`` only the fixed-size bank is chunked, so the
        graph accepts any batch size).

        Raises:
            RuntimeError: the bank is empty.
            ValueError: the layer count or width differs from the bank's.
        """
        if self.is_empty:
            msg = "The reference bank is empty: add the reference images' patch features before few-shot scoring."
            raise RuntimeError(msg)
        if patch_features.dim() != 4 or (patch_features.shape[0], patch_features.shape[3]) != self.features.shape[::2]:
            msg = (
                f"Patch features {list(patch_features.shape)} do not match the bank's {self.num_layers} layers of "
                f"width {self.features.shape[2]} ([layers, images, patches, width] expected)."
            )
            raise ValueError(msg)
        queries = F.normalize(patch_features.float(), dim=-1).to(self.features.dtype)
        total = torch.zeros(patch_features.shape[1:3], dtype=torch.float32, device=patch_features.device)
        for layer in range(self.num_layers):
            total = total + (1.0 - self._max_similarity(queries[layer], self.features[layer]))
        return total / self.num_layers

    def _max_similarity(self, queries: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
        """``[B, N]`` float32 highest cosine similarity of normalised ``[B, N, E]`` queries to a ``[M, E]`` bank."""
        if torch.compiler.is_exporting():
            # The bank's size is static; the batch is not, so the loop must not depend on it.
            tokens = queries.shape[1] if isinstance(queries.shape[1], int) else 1
            return self._max_over_bank(queries, bank, max(1, self.max_elements // tokens))
        flat = queries.flatten(0, 1)  # [B * N, E]
        bank_chunk = min(bank.shape[0], self.max_elements)
        query_chunk = max(1, self.max_elements // bank_chunk)
        best = [self._max_over_bank(part, bank, bank_chunk) for part in flat.split(query_chunk)]
        return torch.cat(best).view(queries.shape[:2])

    @staticmethod
    def _max_over_bank(queries: torch.Tensor, bank: torch.Tensor, bank_chunk: int) -> torch.Tensor:
        """Float32 running maximum of ``queries @ part.T`` over chunks of ``bank_chunk`` reference patches."""
        best = None
        for part in bank.split(bank_chunk):
            similarity = (queries @ part.t()).amax(dim=-1).float()
            best = similarity if best is None else torch.maximum(best, similarity)
        return best

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> ReferenceBank:
        """Move or cast like any module, then give the bank the dtype its precision asks for on its new device."""
        super()._apply(fn, recurse)
        if self.features.dtype != self.storage_dtype:
            self.features = self.features.to(self.storage_dtype)
        return self

    def _load_from_state_dict(
        self, state_dict: dict[str, object], prefix: str, local_metadata: dict[str, object], strict: bool,
        missing_keys: list[str], unexpected_keys: list[str], error_msgs: list[str],
    ) -> None:
        """Resize the (possibly empty) buffer to the stored bank before loading it; keep the bank's dtype.

        A state dict without a bank (a checkpoint from before few-shot existed) leaves the bank as it is, also
        under ``strict`` loading.
        """
        key = f"{prefix}features"
        stored = state_dict.get(key)
        if isinstance(stored, torch.Tensor) and stored.shape != self.features.shape:
            self.features = self.features.new_empty(stored.shape)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
        if stored is None and key in missing_keys:
            missing_keys.remove(key)
