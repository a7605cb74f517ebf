"""What GlocalCLIP needs to learn from: anomalous images. Checked from the train split's labels, before any pass."""

from __future__ import annotations

from lightning.pytorch import LightningDataModule

from anomalib_glocalclip.utils.errors import PluginError


class NoAnomaliesError(PluginError, ValueError):
    """GlocalCLIP was asked to learn prompts from training data without a single anomalous image."""


def check_training_labels(datamodule: LightningDataModule | None) -> None:
    """Refuse training data that holds no anomalous image, from its samples table (no image is read).

    Image-level anomalies (without masks) are enough: they train the global prompts. A datamodule (set up) whose
    train split has no samples table (``train_data.samples`` with ``label_index``) is not checked.

    Raises:
        NoAnomaliesError: every training sample is normal; the message says what to pass instead.
    """
    samples = getattr(getattr(datamodule, "train_data", None), "samples", None)
    if samples is None or "label_index" not in samples:
        return
    if len(samples) and bool((samples["label_index"] == 1).any()):
        return
    name = getattr(datamodule, "name", type(datamodule).__name__)
    msg = (
        f"GlocalCLIP learns its prompts from anomalies, but the training data of {name} ({len(samples)} images) "
        "holds no anomalous image. Learn from auxiliary data with anomalies (--data AuxiliaryTransfer "
        "--data.auxiliary '[{layout: visa, root: ./datasets/visa}]'), or give normal images synthetic anomalies "
        "(--data AuxiliaryTransfer --data.synthetic '[{root: ./good_images}]'). To detect anomalies with prompts "
        "learned before, pass --model.prompt_weights prompts.pt and run `anomalib test` or `anomalib predict`."
    )
    raise NoAnomaliesError(msg)
