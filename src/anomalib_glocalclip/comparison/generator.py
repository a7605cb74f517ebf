"""Jobs of a benchmark config: one per combination of its ``grid`` values (model x category, usually)."""

from __future__ import annotations

from collections.abc import Generator

from anomalib.pipelines.benchmark.generator import BenchmarkJobGenerator
from anomalib.pipelines.components.utils import get_iterator_from_grid_dict
from anomalib.pipelines.types import PREV_STAGE_RESULT
from anomalib.utils.config import flatten_dict

from .job import ZeroShotBenchmarkJob

DEFAULT_SEED = 42


class ZeroShotBenchmarkJobGenerator(BenchmarkJobGenerator):
    """Expand the ``benchmark`` section's grids into ``ZeroShotBenchmarkJob``s.

    Unlike Anomalib's generator it builds nothing: each job builds its model and datamodule when it runs, so
    one model that cannot be built does not stop the others.
    """

    @property
    def job_class(self) -> type:
        """``ZeroShotBenchmarkJob``."""
        return ZeroShotBenchmarkJob

    def generate_jobs(
        self, args: dict[str, object], previous_stage_result: PREV_STAGE_RESULT
    ) -> Generator[ZeroShotBenchmarkJob, None, None]:
        """One job per combination of grid values in ``args`` (the config's ``benchmark`` section)."""
        del previous_stage_result
        check_section(args)
        for container in get_iterator_from_grid_dict(args):
            container.setdefault("seed", DEFAULT_SEED)
            yield ZeroShotBenchmarkJob(self.accelerator, container["model"], container["data"], container["seed"],
                                       flatten_dict(container))


def check_section(args: dict[str, object] | None) -> None:
    """Fail early, with the expected layout, if the ``benchmark`` section lacks ``model`` or ``data``."""
    missing = [key for key in ("model", "data") if not (args or {}).get(key)]
    if missing:
        msg = (
            f"The benchmark config has no `benchmark.{missing[0]}`. Expected:\n"
            "benchmark:\n  seed: 42\n  model:\n    grid:\n      - class_path: GlocalCLIP\n        init_args: {...}\n"
            "  data:\n    class_path: MVTecAD\n    init_args:\n      category:\n        grid: [bottle, cable]"
        )
        raise ValueError(msg)
