"""Few-shot scoring shared by GlocalCLIP and AnoCLIP: a bank of normal reference patches (issue 15).

``ZeroShotCLIPMixin.prepare_references`` chooses the ``k`` references (``references``) and fills the model's
``ReferenceBank`` with their patch features at the layers the zero-shot maps use (AnoCLIP's taken before AnoCLIP+'s
adapter). While the bank is filled, both models' ``forward`` turn the nearest-reference distances into a map with
their own patch-map function and ``combine`` it with the zero-shot outputs (``scoring``). The bank is a persistent
buffer, so checkpoints and exports carry it.
"""

from .reference_bank import ReferenceBank, bank_dtype
from .references import (
    read_reference_images,
    reference_images_from_datamodule,
    reference_images_from_folder,
    select_reference_indices,
)
from .scoring import DEFAULT_FEW_SHOT_WEIGHT, combine, few_shot_anomaly_map

__all__ = [
    "DEFAULT_FEW_SHOT_WEIGHT",
    "ReferenceBank",
    "bank_dtype",
    "combine",
    "few_shot_anomaly_map",
    "read_reference_images",
    "reference_images_from_datamodule",
    "reference_images_from_folder",
    "select_reference_indices",
]
