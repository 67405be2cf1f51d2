"""Training: `setup(config) -> Run`, then `fit(run)`, on accelerate (see `idvid.train.trainer`).

    from idvid.train import load_config, setup, fit
    run = setup(load_config("tiny-synth-moca", ["max_steps=200", "optim.lr=3e-4"]))
    fit(run)

Command line: `idvid train --config PRESET_OR_YAML [key=value ...] [--resume]`; docs/training.md.
"""

from idvid.train.config import TrainConfig, list_presets, load_config
from idvid.train.task import StepContext, TrainTask, ValidationContext, register_task
from idvid.train.trainer import Run, export_run, fit, setup, train

__all__ = [
    "Run",
    "StepContext",
    "TrainConfig",
    "TrainTask",
    "ValidationContext",
    "export_run",
    "fit",
    "list_presets",
    "load_config",
    "register_task",
    "setup",
    "train",
]
