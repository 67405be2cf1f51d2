"""`idvid bench ...`: benchmark subcommands, imported on first use."""

from __future__ import annotations

import importlib

import click

BENCHMARKS: dict[str, tuple[str, str]] = {
    "overhead": ("idvid.bench.overhead:overhead", "Time/memory of each identity-injection variant vs the bare backbone."),
    "curate": ("idvid.bench.curate:curate", "Curation throughput: seconds of video per wall second, per preset."),
}


class _LazyBench(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(BENCHMARKS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in BENCHMARKS:
            return None
        module_name, attr = BENCHMARKS[name][0].split(":")
        return getattr(importlib.import_module(module_name), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Benchmarks"):
            formatter.write_dl([(n, BENCHMARKS[n][1]) for n in self.list_commands(ctx)])


@click.group(cls=_LazyBench)
def bench() -> None:
    """Run a benchmark; each measures side by side in one run and prints ratios."""
