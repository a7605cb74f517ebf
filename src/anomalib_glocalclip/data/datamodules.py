"""The plugin's datamodules: a ``LayoutDataModule`` subclass for each catalogue entry that names one here.

Each class fixes the layout that reads its dataset's official download (``data/layouts``, under the entry's name);
``data/catalogue.py`` is the one list of datasets, and ``tests/test_catalogue.py`` checks that these classes are
its entries'. Why Anomalib's own datamodules are not used for them is in ``data/README.md``.
"""

from __future__ import annotations

from anomalib.data import AnomalibDataModule

from .auxiliary import AuxiliaryTransfer
from .datamodule import LayoutDataModule
from .layouts import get_layout


class BTAD(LayoutDataModule):
    """BTAD, one category read from its official download (layout ``btad``)."""
    default_layout = get_layout("btad")


class KolektorSDD(LayoutDataModule):
    """SDD (KolektorSDD), one category read from its official download (layout ``ksdd``)."""
    default_layout = get_layout("ksdd")


class DTDSynthetic(LayoutDataModule):
    """DTD-Synthetic, one category read from its official download (layout ``dtd_synthetic``)."""
    default_layout = get_layout("dtd_synthetic")


class DAGM(LayoutDataModule):
    """DAGM 2007 (AnomalyCLIP's table only), one category read from its official download (layout ``dagm``)."""
    default_layout = get_layout("dagm")


class HeadCT(LayoutDataModule):
    """HeadCT, one category read from its official download (layout ``headct``)."""
    default_layout = get_layout("headct")


class BrainMRI(LayoutDataModule):
    """BrainMRI, one category read from its official download (layout ``brainmri``)."""
    default_layout = get_layout("brainmri")


class Br35H(LayoutDataModule):
    """Br35H, one category read from its official download (layout ``br35h``)."""
    default_layout = get_layout("br35h")


class ISIC2016(LayoutDataModule):
    """ISIC, one category read from its official download (layout ``isic2016``)."""
    default_layout = get_layout("isic2016")


class CVCColonDB(LayoutDataModule):
    """CVC-ColonDB, one category read from its official download (layout ``cvc_colondb``)."""
    default_layout = get_layout("cvc_colondb")


class CVCClinicDB(LayoutDataModule):
    """CVC-ClinicDB, one category read from its official download (layout ``cvc_clinicdb``)."""
    default_layout = get_layout("cvc_clinicdb")


class KvasirSEG(LayoutDataModule):
    """Kvasir, one category read from its official download (layout ``kvasir_seg``)."""
    default_layout = get_layout("kvasir_seg")


class EndoTect(LayoutDataModule):
    """Endo, one category read from its official download (layout ``endotect``)."""
    default_layout = get_layout("endotect")


class TN3K(LayoutDataModule):
    """TN3K, one category read from its official download (layout ``tn3k``)."""
    default_layout = get_layout("tn3k")


PLUGIN_DATAMODULES: tuple[type[LayoutDataModule], ...] = (
    BTAD, KolektorSDD, DTDSynthetic, DAGM, HeadCT, BrainMRI, Br35H,
    ISIC2016, CVCColonDB, CVCClinicDB, KvasirSEG, EndoTect, TN3K,
)
"""The catalogue's datamodules that this plugin defines (the others are Anomalib's), in the catalogue's order."""

DATAMODULES: tuple[type[AnomalibDataModule], ...] = (AuxiliaryTransfer, LayoutDataModule, *PLUGIN_DATAMODULES)
"""Datamodules this plugin registers with Anomalib under their class names (pyproject's entry points list them)."""
