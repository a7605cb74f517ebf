r"""Few-shot GlocalCLIP and AnoCLIP: a handful of normal images of your product sharpen the zero-shot maps.

    python examples/few_shot.py                                                     # generated data, tiny CLIP
    python examples/few_shot.py --mvtec ./datasets/MVTecAD --category cable --k 4 \\
        --weights ~/.cache/clip/vit_b_16_plus_240-laion400m_e32-699c4b84.pt          # AnoCLIP's backbone
    python examples/few_shot.py --reference-images ./my_good_parts --k 0            # every image of a folder

For each model it tests zero-shot, then with ``k`` normal references (taken from the train split, seeded, or from
``--reference-images``), and prints both. Without ``--weights`` it uses the tiny random CLIP of the test kit: the
pipeline runs, and the references still help (the random prompts know nothing, the references show what normal
looks like), but the numbers say nothing about real CLIP models. GlocalCLIP needs learned prompts
(``--prompts prompts.pt``); without them it is left out when real weights are used.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from anomalib.data import MVTecAD
from anomalib.engine import Engine

from anomalib_glocalclip import AnoCLIP, GlocalCLIP
from anomalib_glocalclip.testing import TINY_CLIP_CONFIG, generate_mvtec_ad

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--mvtec", type=Path, help="MVTec AD as extracted")
parser.add_argument("--category", default="bottle")
parser.add_argument("--k", type=int, default=4, help="number of normal reference images (0: all of the folder)")
parser.add_argument("--reference-images", help="folder of normal images (default: the category's train split)")
parser.add_argument("--weights", help="open_clip ViT-B-16-plus-240 laion400m_e32 weight file (AnoCLIP)")
parser.add_argument("--prompts", help="GlocalCLIP's learned prompt file (prompts.pt)")
parser.add_argument("--workdir", type=Path, default=Path("results/example_few_shot"))
args = parser.parse_args()

mvtec = args.mvtec or generate_mvtec_ad(
    args.workdir / "data" / "mvtec", categories=(args.category,), n_train=6, n_test_good=3, n_test_bad=6,
    defects=("square",),
)
few_shot = {"few_shot": args.k, "reference_images": args.reference_images}
if args.weights:
    builders = {"AnoCLIP": lambda **extra: AnoCLIP(backbone="ViT-B-16-plus-240", pretrained=args.weights, **extra)}
    if args.prompts:
        builders["GlocalCLIP"] = lambda **extra: GlocalCLIP(prompt_weights=args.prompts, **extra)
else:
    tiny = {"backbone": str(TINY_CLIP_CONFIG), "pretrained": None, "image_size": 64}
    prompts = args.prompts
    if prompts is None:  # random prompts, at temperature 1 so that they are uninformative rather than noisy
        torch.manual_seed(0)
        prompts = str(GlocalCLIP(**tiny, sigma=1.0).save_prompts(args.workdir / "random_prompts.pt"))
    builders = {
        "AnoCLIP": lambda **extra: AnoCLIP(**tiny, image_score_views="none", **extra),
        "GlocalCLIP": lambda **extra: GlocalCLIP(**tiny, sigma=1.0, temperature=1.0, prompt_weights=prompts, **extra),
    }

for name, build in builders.items():
    for label, extra in (("zero-shot", {}), (f"{args.k or 'all'}-shot", few_shot)):
        model = build(**extra)
        engine = Engine(default_root_dir=args.workdir / name / label, logger=False)
        datamodule = MVTecAD(root=mvtec, category=args.category, num_workers=0)
        metrics = engine.test(model, datamodule=datamodule, verbose=False)[0]
        print(f"{name} {label}:", {metric: round(value, 3) for metric, value in metrics.items() if "AUROC" in metric})
        if extra:
            print("  references:", *model.reference_paths, sep="\n    ")
