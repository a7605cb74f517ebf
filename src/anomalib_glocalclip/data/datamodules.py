"""Named datamodules for the paper's datasets that Anomalib 2.7 has no fitting datamodule for.

Each reads one category of its dataset in the official download layout (see ``data/README.md``); the
arguments are :class:`LayoutDataModule`'s; ``data/catalogue.py`` lists them with their datasets. The
single-category datasets need no ``category``.

* ``BTAD``: Anomalib's ``BTech`` expects the png-converted copy its own download makes; on the official
  archive it looks for ``.png`` masks where category ``03`` has ``.bmp`` ones.
* ``KolektorSDD``: Anomalib's ``Kolektor`` moves 80 % of the defect-free images into a train split of its own;
  the paper tests zero-shot on all images.
* The rest have no Anomalib datamodule.
"""

from __future__ import annotations

from .datamodule import LayoutDataModule
from .layouts import industrial, medical_image, medical_pixel


class BTAD(LayoutDataModule):
    """BTAD (BeanTech) categories ``01``, ``02``, ``03``, read from the official ``BTech_Dataset_transformed``."""

    default_layout = industrial.BTAD


class KolektorSDD(LayoutDataModule):
    """KolektorSDD (the paper's "SDD"): all 399 images of ``kos01`` ... ``kos50`` as the test split."""

    default_layout = industrial.KSDD


class DTDSynthetic(LayoutDataModule):
    """DTD-Synthetic: one of its 12 texture categories (``Woven_001``, ...)."""

    default_layout = industrial.DTD_SYNTHETIC


class DAGM(LayoutDataModule):
    """DAGM 2007: one of ``Class1`` ... ``Class10``; its ``Test`` folder is the test split, ``Train`` the train one."""

    default_layout = industrial.DAGM


class ISIC2016(LayoutDataModule):
    """ISIC 2016 task 1 test set: skin lesions with masks, anomalous only (pixel metrics only)."""

    default_layout = medical_pixel.ISIC2016


class CVCColonDB(LayoutDataModule):
    """CVC-ColonDB: colonoscopy polyps with masks, anomalous only (pixel metrics only)."""

    default_layout = medical_pixel.CVC_COLONDB


class CVCClinicDB(LayoutDataModule):
    """CVC-ClinicDB: colonoscopy polyps with masks, anomalous only (pixel metrics only)."""

    default_layout = medical_pixel.CVC_CLINICDB


class KvasirSEG(LayoutDataModule):
    """Kvasir-SEG: colonoscopy polyps with masks, anomalous only (pixel metrics only)."""

    default_layout = medical_pixel.KVASIR_SEG


class EndoTect(LayoutDataModule):
    """EndoTect 2021 segmentation test set: polyps with masks, anomalous only (pixel metrics only)."""

    default_layout = medical_pixel.ENDOTECT


class TN3K(LayoutDataModule):
    """TN3K test set: thyroid-nodule ultrasound with masks, anomalous only (pixel metrics only)."""

    default_layout = medical_pixel.TN3K


class HeadCT(LayoutDataModule):
    """HeadCT: 100 normal and 100 hemorrhage CT slices, image labels only (image metrics only)."""

    default_layout = medical_image.HEADCT


class BrainMRI(LayoutDataModule):
    """BrainMRI (Kaggle ``brain_tumor_dataset``): ``no``/``yes`` MRI slices, image labels only."""

    default_layout = medical_image.BRAINMRI


class Br35H(LayoutDataModule):
    """Br35H: ``no``/``yes`` MRI slices (1500 each), image labels only."""

    default_layout = medical_image.BR35H
