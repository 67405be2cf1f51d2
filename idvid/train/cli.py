"""`idvid train`: train a model from a YAML preset or file, with `key=value` overrides; resumable."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path

import click

from idvid.errors import InputError

EPILOG = """\b
Examples:
  idvid train --config toy run_dir=runs/toy                      # trainer smoke test, seconds
  idvid train --config tiny-synth-moca run_dir=runs/moca         # laptop-scale identity model
  idvid train --config tiny-synth-moca run_dir=runs/base task.variant=none   # same budget, no identity
  idvid train --config runs/moca/config.yaml --resume            # continue a killed run exactly
  accelerate launch -m idvid train --config cogvideox-5b-moca-adapter task.model=/models/CogVideoX-5b-I2V ...

\b
Overrides are dotted keys into the config (see docs/training.md), values in YAML syntax:
  max_steps=200  optim.lr=3e-4  data.image_ratio=0.2  task.model_overrides={backbone: {precision: bf16}}
"""


@click.command("train", epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "-c", "config", default=None, metavar="PRESET|FILE",
              help="A preset name (see --list-presets) or a YAML file; without it the built-in defaults are used.")
@click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--resume/--no-resume", default=None,
              help="--resume: continue from the run folder's latest checkpoint (error if there is none). "
                   "--no-resume: refuse to touch a run folder that has checkpoints. Default: resume when "
                   "the run folder has checkpoints, start fresh otherwise.")
@click.option("--from-checkpoint", "from_checkpoint", default=None,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Resume from this checkpoint folder (RUN/checkpoints/step-N) instead of the latest.")
@click.option("--export", "export", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="After training, write the final weights (the EMA when enabled) as a model folder here.")
@click.option("--print-config", is_flag=True, help="Print the resolved config as YAML and exit.")
@click.option("--list-presets", is_flag=True, help="List the preset names and exit.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar (log.progress=false).")
def train(config: str | None, overrides: tuple[str, ...], resume: bool | None, from_checkpoint: Path | None,
          export: Path | None, print_config: bool, list_presets: bool, quiet: bool) -> None:
    """Train a model: setup -> fit on accelerate, logging to RUN/log.jsonl.

    Every N steps (checkpoint.every) an atomic checkpoint is written to RUN/checkpoints/step-N
    (safetensors weights, EMA and optimizer state, JSON trainer state, the config YAML); a killed run
    started again with the same config continues from the latest one with the same loss trajectory.
    SIGTERM or Ctrl-C stops after the step in flight and checkpoints it first (exit code 143 / 130).
    Validation metrics are logged every validation.every steps.
    """
    from idvid.train.config import list_presets as presets
    from idvid.train.config import load_config

    if list_presets:
        for name in presets():
            click.echo(name)
        return
    extra = {"log": {"progress": False}} if quiet else None
    cfg = load_config(config, overrides, extra=extra)
    if print_config:
        click.echo(cfg.to_yaml(), nl=False)
        return
    if resume is False and from_checkpoint is not None:
        raise InputError("--no-resume and --from-checkpoint contradict each other")
    logging.basicConfig(level=logging.INFO, format="idvid train: %(message)s")
    logging.getLogger("idvid").setLevel(logging.INFO)

    from idvid.train.trainer import TrainingStopped, export_run, fit, setup

    run = setup(cfg, resume=resume, resume_from=from_checkpoint)
    if run.resumed_from is not None and run.is_main:
        click.echo(f"resuming from {run.resumed_from} (step {run.step})", err=True)
    try:
        fit(run)
    except TrainingStopped as stop:
        if run.is_main:
            click.echo(f"idvid train: stopped by {signal.Signals(stop.signum).name} at step {stop.step}, "
                       f"checkpointed to {stop.checkpoint}; run the same command to resume", err=True)
        sys.exit(128 + stop.signum)  # the shell's convention for a process ended by a signal
    if run.is_main:
        click.echo(f"done: {run.step} steps -> {run.run_dir}", err=True)
    if export is not None:
        path = export_run(run, export)
        if path is not None:
            click.echo(f"exported -> {path}", err=True)
