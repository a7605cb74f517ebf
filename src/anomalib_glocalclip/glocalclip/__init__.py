"""GlocalCLIP (arXiv 2411.06071): object-agnostic global-local prompt learning for zero-shot anomaly detection."""

from .lightning_model import GlocalCLIP
from .presets import DEFAULT_PROMPT_SHAPE, PRESETS
from .prompt_file import PromptFileError, read_prompt_file, save_prompt_file
from .prompt_learner import GlocalPromptLearner, PromptShape
from .torch_model import GlocalCLIPModel
from .training_data import NoAnomaliesError

__all__ = [
    "DEFAULT_PROMPT_SHAPE",
    "PRESETS",
    "GlocalCLIP",
    "GlocalCLIPModel",
    "GlocalPromptLearner",
    "NoAnomaliesError",
    "PromptFileError",
    "PromptShape",
    "read_prompt_file",
    "save_prompt_file",
]
