"""The `idvid` command line: one entry point, one subcommand per job.

Subcommands live beside the code they drive (`idvid/<package>/cli.py`) and are imported only when
invoked, so `idvid --help` does not pay for torch or onnxruntime. User mistakes (`IdvidError`, click
usage errors) become one line on stderr and exit code 2; anything else is a bug and keeps its traceback.
transformers' and diffusers' own warnings are kept to errors unless TRANSFORMERS_VERBOSITY /
DIFFUSERS_VERBOSITY say otherwise: they are advice to developers (e.g. "install torchvision") that would
otherwise sit above a command's one-line error.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from idvid.errors import IdvidError

# name -> ("module:attribute", one-line help shown by `idvid --help` without importing the module)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "generate": ("idvid.pipelines.cli:generate", "Generate a video of the person in a reference photo from a prompt."),
    "synth": ("idvid.synth.cli:synth", "Render clips of the procedural identity-video world."),
    "evaluate": ("idvid.evaluate.cli:evaluate", "Score videos: face similarity and identity consistency."),
    "faces": ("idvid.faces.cli:faces", "Analyse the faces in an image or video (detect, pose, embed)."),
    "curate": ("idvid.data.cli:curate", "Turn raw videos into an identity-video training set."),
    "train": ("idvid.train.cli:train", "Train a model (identity video model, tiny VAE) with exact resume."),
    "bench": ("idvid.bench.cli:bench", "Benchmarks (overhead of identity modules, curation throughput)."),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in SUBCOMMANDS:
            return None
        module_name, attr = SUBCOMMANDS[name][0].split(":")
        return getattr(importlib.import_module(module_name), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SUBCOMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="idvid")
def cli() -> None:
    """idvid: identity-preserving text-to-video generation.

    One reference photo of a person plus a prompt in, a video of that person out.
    Run `idvid COMMAND --help` for each command's options.
    """


def _fail(message: str) -> None:
    click.echo(f"idvid: error: {message}", err=True)
    sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    """Console entry point; turns user errors into one line and exit code 2."""
    for library in ("TRANSFORMERS", "DIFFUSERS"):
        os.environ.setdefault(f"{library}_VERBOSITY", "error")
    try:
        cli.main(args=argv, prog_name="idvid", standalone_mode=False)
    except click.exceptions.Exit as exc:  # --help, --version
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        _fail("aborted")
    except click.UsageError as exc:
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        _fail(exc.format_message().replace("\n", " ") + hint)
    except click.ClickException as exc:
        _fail(exc.format_message().replace("\n", " "))
    except IdvidError as exc:
        _fail(str(exc).replace("\n", " "))
    except KeyboardInterrupt:
        click.echo("idvid: interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
