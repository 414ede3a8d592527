"""``rlsim calibrate``: run the microbenchmarks on this GPU; ``rlsim calibrate report``: held-out accuracy."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import user_errors

calibrate_app = typer.Typer(add_completion=False, invoke_without_command=True, no_args_is_help=False,
                            help="Calibration: microbenchmarks on a real GPU, fitted kernel tables, held-out accuracy.")


def register(app: typer.Typer) -> None:
    app.add_typer(calibrate_app, name="calibrate")


@calibrate_app.callback()
@user_errors
def calibrate_cmd(
    ctx: typer.Context,
    out: Optional[str] = typer.Option(None, "--out", help="output folder (default calibration/<gpu>)"),
    quick: bool = typer.Option(False, "--quick", help="a small grid (minutes)"),
    ops: Optional[str] = typer.Option(None, "--ops", help="comma list: gemm,attention,moe,elementwise,sampling,overhead,collectives"),
    backend: str = typer.Option("torch", "--backend", help="torch | vllm"),
):
    """Run the microbenchmarks on this machine's GPU (needs `pip install 'rlsim[calibrate]'`); resumable."""
    if ctx.invoked_subcommand is not None:
        return
    from ..errors import ConfigurationError
    from ..inputs import check_output_dir

    if out is not None:  # before the measurements (hours on a full grid)
        check_output_dir(out, "--out")

    if backend == "vllm":
        from ..calibration import vllm_backend

        vllm_backend.run(out=out, quick=quick)
        return
    if backend != "torch":
        raise ConfigurationError(f"--backend = {backend!r}; allowed: torch, vllm")
    try:
        import torch
    except ImportError:
        raise ConfigurationError("`rlsim calibrate` needs torch and a GPU: pip install 'rlsim[calibrate]'") from None

    if not torch.cuda.is_available():
        raise ConfigurationError("`rlsim calibrate` needs a CUDA GPU (torch.cuda.is_available() is False)")
    from ..calibration.microbench import run_calibration

    name = torch.cuda.get_device_name().lower()
    gpu = "h200" if "h200" in name else "h100" if "h100" in name else name.split()[-1]
    run_calibration(Path(out or f"calibration/{gpu}"), quick=quick, ops=ops.split(",") if ops else None)


@calibrate_app.command("report")
@user_errors
def report_cmd(
    gpu: Optional[str] = typer.Option(None, "--gpu", help="calibration folder (h100, h200); default: all"),
    write: bool = typer.Option(False, "--write", help="write report.json/report.md into the folder"),
):
    """Held-out error per op class (median, p90) of the fitted predictors on the committed data."""
    from ..report.tables import make_console
    from rich.table import Table

    from ..catalog.loader import catalog_dir
    from ..validation.calibration_report import report, write_report

    root = catalog_dir("calibration")
    gpus = [gpu] if gpu else sorted(p.name for p in root.iterdir() if (p / "meta.json").is_file())
    for g in gpus:
        r = write_report(root / g) if write else report(root / g)
        t = Table(title=f"held-out accuracy: {r['gpu']} (calibration/{g})", title_justify="left")
        for c in ("op class", "points", "median", "p90", "max"):
            t.add_column(c, justify="left" if c == "op class" else "right")
        for k, v in r["op_classes"].items():
            ok = v["median"] < 0.05 and v["p90"] < 0.15
            t.add_row(k, str(v["n"]), f"{v['median']:.1%}", f"{v['p90']:.1%}", f"{v['max']:.1%}" + ("" if ok else " *"))
        make_console().print(t)
        make_console().print(f"[dim]{r['method']}; * misses the target (median < 5%, p90 < 15%)[/dim]")
        for m in r.get("incomplete", []):
            make_console().print(f"[yellow]partial calibration: {m} (re-run `rlsim calibrate` to resume it)[/yellow]")
