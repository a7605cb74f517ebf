"""What the local page adds to the model: one image through the page's HTTP API vs bare scoring vs ``Engine.predict``.

    python benchmarks/app_speed.py --tiny                    # the tiny random CLIP on the CPU (offline)
    python benchmarks/app_speed.py --model glocalclip --prompts prompts.pt --size 1024 --repeats 10

One run, one image of ``--size`` pixels (a generated product photo), the model built once and shared:

* ``bare scoring``: ``app.scoring.score_images`` (read, pre-process, forward, heatmap PNG), what the page runs;
* ``Engine.predict``: Anomalib's ``Engine.predict(model, data_path=image)`` of the same image (a second model
  of the same choice, so the page's model is never attached to a trainer);
* ``page round trip``: upload, score and download of the results through the page's HTTP API (``gradio_client``;
  a direct call of the page's handler where ``gradio_client`` is missing).

It prints the median seconds of each after one warm-up call and the ratios page / bare and page / predict.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image


def _median_seconds(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall time of each run over ``repeats`` rounds after one warm-up call each.

    The runs take turns within each round, so a change of the machine's load touches all of them alike.
    """
    for run in runs.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def _image(folder: Path, size: int) -> Path:
    from anomalib_glocalclip.demo.products import make_image

    path = folder / "product.png"
    Image.fromarray(make_image(np.random.default_rng(0), size, "bottle", anomalous=True)[0]).save(path)
    return path


def _engine_predict(choice: object, image: Path, workdir: Path) -> Callable[[], object]:
    from anomalib.engine import Engine

    from anomalib_glocalclip.app import build_model

    model = build_model(choice)
    engine = Engine(default_root_dir=workdir / "engine", logger=False, accelerator="auto", devices=1)
    return lambda: engine.predict(model, data_path=image)


def _page_round_trip(
    options: object, cache: object, image: Path, workdir: Path, stack: contextlib.ExitStack
) -> tuple[Callable[[], object], str]:
    """(one round trip, how) through the served page's API; the page closes with ``stack``."""
    from anomalib_glocalclip.app.page import Handlers, serve

    inputs = ("AnoCLIP" if options.method == "AnoCLIP" else "GlocalCLIP", options.object_name, "", None, "")
    try:
        from gradio_client import Client, handle_file
    except ImportError:
        handlers = Handlers(options, cache, workdir)
        return (lambda: list(handlers.score(*inputs, [str(image)], "", None, 0.5, None)),
                "direct call of the page's handler (gradio_client not installed)")
    page = serve(options, cache, block=False)
    stack.callback(page.close)
    client = Client(page.local_url, verbose=False)
    return (lambda: client.predict(*inputs, [handle_file(str(image))], "", [], 0.5, api_name="/score"),
            f"HTTP API of the page at {page.local_url} (gradio_client)")


def main() -> None:
    """Measure and print the three timings and their ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny random CLIP (offline, CPU)")
    parser.add_argument("--model", choices=("anoclip", "glocalclip"), default="anoclip")
    parser.add_argument("--prompts", default=None, help="GlocalCLIP's prompt file")
    parser.add_argument("--weights", default=None, help="open_clip tag or weight file (default: the method's)")
    parser.add_argument("--size", type=int, default=1024, help="side of the square test image in pixels")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls of each (after one warm-up)")
    parser.add_argument("--skip-predict", action="store_true", help="leave out Engine.predict")
    args = parser.parse_args()
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

    from anomalib_glocalclip.app import AppOptions, ModelCache, score_images

    options = AppOptions(method="GlocalCLIP" if args.model == "glocalclip" else "AnoCLIP", prompt_file=args.prompts,
                         weights=args.weights, tiny=args.tiny, port=None)
    workdir = Path(tempfile.mkdtemp(prefix="app_speed_"))
    image = _image(workdir, args.size)
    cache = ModelCache()
    start = time.perf_counter()
    model = cache.get(options.choice())
    build = time.perf_counter() - start
    runs = {"bare scoring": lambda: score_images(model, [image], workdir / "bare")}
    if not args.skip_predict:
        runs["Engine.predict"] = _engine_predict(options.choice(), image, workdir)
    with contextlib.ExitStack() as stack:
        runs["page round trip"], how = _page_round_trip(options, cache, image, workdir, stack)
        timings = _median_seconds(runs, args.repeats)

    print(f"One {args.size}x{args.size} image, {options.method}{' (tiny random CLIP)' if args.tiny else ''}; "
          f"model built once in {build:.2f} s; median of {args.repeats} rounds after a warm-up. Page: {how}.")
    print("| path | seconds |\n|---|---|")
    for name, seconds in timings.items():
        print(f"| {name} | {seconds:.3f} |")
    print(f"Ratio page / bare scoring: {timings['page round trip'] / timings['bare scoring']:.2f}")
    if "Engine.predict" in timings:
        print(f"Ratio page / Engine.predict: {timings['page round trip'] / timings['Engine.predict']:.2f}")


if __name__ == "__main__":
    main()
