"""Run the official MuSc code (``xrli-U/MuSc``) end to end on one MVTec-layout category and save what it scores.

    python benchmarks/musc_reference.py --reference /path/to/MuSc --data ROOT --category bottle \
        --backbone ViT-B-16 --pretrained weights.pt --image-size 240 --feature-layers 2 5 8 11 --out ref.npz

The worker behind ``musc_parity.py`` and ``musc_speed.py``; each runs it in its own process. Nothing of the
reference is copied here: this process changes into the checkout and imports it from there. It builds the
reference's ``MuSc`` from its own ``configs/musc.yaml`` with the given fields overridden (as its
``examples/musc_main.py`` does from the command line), then runs ``MuSc.make_category_data``, the reference's
whole pipeline for a category: its dataset and resize, the backbone, LNAMD, MSM, the fused maps, the image
scores and RsCIN. Two names the reference module looked up are rebound **in this process only**, so its metric
code is left out and its outputs can be read:

* ``compute_metrics`` records the scores and maps it is given and returns zeros (the metrics are not timed);
* ``RsCIN`` records its inputs (pre-RsCIN scores and class tokens), then calls the reference's own ``RsCIN``.

After the timed call, the reference's ``RsCIN`` is run again on the recorded inputs for VisA's ``K = [1, 8, 9]``
and for ``[0]`` (RsCIN off). The ``.npz`` holds ``paths`` (the reference's order), ``maps`` ``[N, S, S]``
(float64), ``raw_scores`` ``[N]``, ``class_tokens`` ``[N, E]``, ``scores_1_2_3``, ``scores_1_8_9``,
``scores_off``, ``seconds`` and ``cpu_seconds`` (wall and CPU time of the timed call), ``peak_bytes`` (peak
RSS of the process, or peak CUDA memory allocated on a GPU) and ``device``. ``--device cpu`` hides CUDA from
the reference (it picks ``cuda:<device>`` whenever CUDA is available).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=Path, required=True, help="checkout of xrli-U/MuSc")
    parser.add_argument("--data", type=Path, required=True, help="root of an MVTec AD-layout dataset")
    parser.add_argument("--category", default="bottle")
    parser.add_argument("--backbone", default="ViT-B-16")
    parser.add_argument("--pretrained", help="open_clip tag or local weight file (default: random weights)")
    parser.add_argument("--image-size", type=int, default=240)
    parser.add_argument("--feature-layers", type=int, nargs="+", default=[2, 5, 8, 11], help="0-indexed, as its yaml")
    parser.add_argument("--r-list", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--device", default="cpu", help="'cpu' or a CUDA index ('0')")
    parser.add_argument("--out", type=Path, required=True)
    return parser.parse_args()


def _peak_bytes(cuda: bool) -> int:
    import torch

    if cuda:
        return int(torch.cuda.max_memory_allocated())
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux


def main() -> None:
    """Build the reference's model (untimed), time ``make_category_data`` and save its outputs."""
    args = _arguments()
    args.out = args.out.resolve()
    data = args.data.resolve()
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    reference = args.reference.resolve()
    os.chdir(reference)  # the reference reads ./configs and appends ./models/backbone to sys.path itself
    sys.path.insert(0, str(reference))

    import models.musc as reference_musc
    import torch
    from utils.load_config import load_yaml

    cfg = load_yaml("configs/musc.yaml")
    cfg["datasets"].update(dataset_name="mvtec_ad", data_path=str(data), class_name=args.category,
                           img_resize=args.image_size, divide_num=1)
    cfg["models"].update(backbone_name=args.backbone, pretrained=args.pretrained, batch_size=args.batch_size,
                         feature_layers=args.feature_layers, r_list=args.r_list)
    cfg["device"] = "0" if args.device == "cpu" else str(args.device)
    cfg["testing"].update(output_dir=tempfile.mkdtemp(prefix="musc_reference_"), vis=False, save_excel=False)

    model = reference_musc.MuSc(cfg, seed=42)  # builds and loads the backbone: not timed
    cuda = model.device.type == "cuda"
    recorded: dict[str, object] = {}
    reference_rscin = reference_musc.RsCIN

    def record_rscin(scores: np.ndarray, class_tokens: list, k_list: list[int]) -> np.ndarray:
        recorded.update(raw_scores=np.asarray(scores), class_tokens=np.asarray(class_tokens), k_list=list(k_list))
        return reference_rscin(scores, class_tokens, k_list=k_list)

    def record_metrics(_gt_sp: np.ndarray, pr_sp: np.ndarray, _gt_px: np.ndarray, pr_px: np.ndarray) -> tuple:
        recorded.update(scores=np.asarray(pr_sp), maps=np.asarray(pr_px))
        return (0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 0.0)

    reference_musc.RsCIN, reference_musc.compute_metrics = record_rscin, record_metrics
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start, start_cpu = time.perf_counter(), time.process_time()
    model.make_category_data(args.category)
    if cuda:
        torch.cuda.synchronize()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu

    paths = [row[2] for row in model.load_datasets(args.category).data_to_iterate]
    raw, tokens = recorded["raw_scores"], list(recorded["class_tokens"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        args.out,
        paths=np.array([str(Path(path).resolve()) for path in paths]),
        maps=recorded["maps"].reshape(len(paths), args.image_size, args.image_size),
        raw_scores=raw,
        class_tokens=recorded["class_tokens"],
        scores_1_2_3=recorded["scores"],
        scores_1_8_9=reference_rscin(raw, tokens, k_list=[1, 8, 9]),
        scores_off=reference_rscin(raw, tokens, k_list=[0]),
        seconds=seconds,
        cpu_seconds=cpu_seconds,
        peak_bytes=_peak_bytes(cuda),
        device=str(model.device),
    )
    print(f"reference: {len(paths)} images in {seconds:.2f} s on {model.device}; saved {args.out}")


if __name__ == "__main__":
    main()
