"""``python -m anomalib_glocalclip.cli``: the same as ``anomalib-glocalclip``."""

import sys

from anomalib_glocalclip.cli import main

sys.exit(main())
