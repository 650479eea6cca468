"""Training: the one Engine, the stage objectives, evaluation, checkpoints and torchrun support."""

from surgery.train.distributed import DistContext, init_distributed
from surgery.train.engine import Engine, NonFiniteLoss, StepResult

__all__ = ["DistContext", "Engine", "NonFiniteLoss", "StepResult", "init_distributed"]
