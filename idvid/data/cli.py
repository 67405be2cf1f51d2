"""`idvid curate`: turn raw videos into an identity-video training set (see docs/curation.md)."""

from __future__ import annotations

import click


def _stage_list() -> str:
    from idvid.data.curate import registry

    stages = registry.load_all()
    return "\n".join(f"{name:22s} {spec.kind:8s} {spec.doc}" for name, spec in sorted(stages.items()))


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--input", "inputs", required=False, metavar="DIR|GLOB|LIST",
              help="A folder (searched recursively), a glob, or a .txt/.csv/.parquet list of videos.")
@click.option("--out", "out_dir", required=False, type=click.Path(file_okay=False),
              help="Output folder: manifest.parquet, clips/, face_pool/, flow/, report/, work/.")
@click.option("--preset", default="lfa", show_default=True, metavar="NAME|PATH.yaml",
              help="celebipvid, human-motion, lfa, or a preset YAML file of your own.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 256),
              help="Parallel worker processes (Ray actors with --ray), one thread each.")
@click.option("--ray", "ray_address", default=None, metavar="ADDRESS",
              help="Run the stages on Ray Data: a cluster address, or 'local' to start one here.")
@click.option("--no-report", is_flag=True, help="Skip the summary report and plots.")
@click.option("--list-stages", is_flag=True, help="List the available stages and exit.")
def curate(inputs, out_dir, preset, workers, ray_address, no_report, list_stages) -> None:
    """Filter, annotate and crop videos into an identity-video training set.

    Re-running with the same --out resumes: finished videos are skipped.
    """
    if list_stages:
        click.echo(_stage_list())
        return
    if not inputs or not out_dir:
        raise click.UsageError("--input and --out are required")
    from idvid.data.curate import curate as run
    from idvid.data.curate import load_preset

    p = load_preset(preset)  # validate before touching the inputs
    result = run(inputs, out_dir, p, workers=workers, ray_address=ray_address, report=not no_report)
    click.echo(f"kept {result.kept} of {len(result.rows)} clip segments "
               f"({result.processed} videos processed, {result.reused} already done) "
               f"in {result.seconds:.1f}s; {result.video_seconds / max(result.seconds, 1e-9):.2f}x real time")
    click.echo(f"manifest: {result.manifest_path}")
    if not no_report:
        click.echo(f"report:   {result.out_dir / 'report' / 'summary.md'}")
