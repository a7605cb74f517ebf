r"""AnoCLIP and AnoCLIP+ in Python: zero-shot anomaly maps with no training at all.

    python examples/anoclip_zero_shot.py                                          # generated data, tiny CLIP
    python examples/anoclip_zero_shot.py --mvtec ./datasets/MVTecAD --category cable \\
        --weights ~/.cache/clip/vit_b_16_plus_240-laion400m_e32-699c4b84.pt         # the paper's backbone

Without ``--weights`` it uses the tiny random CLIP ``tiny-clip`` (the pipeline runs, the scores mean nothing).
Metrics are on Anomalib's normalised scores, as ``anomalib test`` reports them; heatmaps are named by full path.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from anomalib.data import MVTecAD
from anomalib.engine import Engine

from anomalib_glocalclip import AnoCLIP
from anomalib_glocalclip.demo.datasets import generate_mvtec_ad

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--mvtec", type=Path, help="MVTec AD as extracted")
parser.add_argument("--category", default="bottle")
parser.add_argument("--weights", help="open_clip ViT-B-16-plus-240 laion400m_e32 weight file")
parser.add_argument("--workdir", type=Path, default=Path("results/example_anoclip"))
args = parser.parse_args()
args.workdir = args.workdir.resolve()  # printed paths open from any folder

mvtec = args.mvtec or generate_mvtec_ad(args.workdir / "data" / "mvtec", categories=(args.category,))
if args.weights:
    backbone = {"backbone": "ViT-B-16-plus-240", "pretrained": args.weights, "image_size": 240}
else:
    backbone = {"backbone": "tiny-clip", "pretrained": None, "image_size": 64}

for tta in (False, True):  # AnoCLIP, then AnoCLIP+ (a test-time adapter per image)
    model = AnoCLIP(**backbone, tta=tta)  # the class name comes from the datamodule's category
    engine = Engine(default_root_dir=args.workdir / ("anoclip_plus" if tta else "anoclip"))
    datamodule = MVTecAD(root=mvtec, category=args.category, num_workers=0)
    metrics = engine.test(model, datamodule=datamodule, verbose=False)[0]
    print("AnoCLIP+" if tta else "AnoCLIP", "metrics (on Anomalib's normalised scores, as `anomalib test`):")
    print({name: round(value, 3) for name, value in metrics.items()})
    print(f"Heatmaps: {Path(engine.trainer.default_root_dir) / 'images'}")
