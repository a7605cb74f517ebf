"""Print the dataset table of ``data/README.md`` from the catalogue: ``python -m anomalib_glocalclip.data``."""

from .catalogue import markdown_table

print(markdown_table())
