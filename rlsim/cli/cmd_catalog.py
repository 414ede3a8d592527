"""``rlsim models``: the catalog's models, with the Hugging Face ids each accepts (``--model`` takes any of them)."""

from __future__ import annotations

import typer

from .common import emit_json, user_errors


def register(app: typer.Typer) -> None:
    app.command("models")(models_cmd)


@user_errors
def models_cmd(as_json: bool = typer.Option(False, "--json", help="print one JSON object")):
    """Catalog models: name, aliases, Hugging Face ids, size, default workload and draft heads."""
    from ..catalog import load_model
    from ..catalog.loader import NOT_MODELLED, list_models

    rows = []
    for name in sorted(set(list_models().values())):
        m = load_model(name)
        rows.append({"name": m.name, "aliases": list(m.aliases), "hf_ids": [m.hf_id, *m.hf_aliases],
                     "architecture": m.architecture, "params_b": round(m.total_params / 1e9, 2),
                     "active_params_b": round(m.active_params / 1e9, 2), "mtp_num_layers": m.mtp_num_layers,
                     "default_workload": m.default_workload, "drafts": dict(m.drafts)})
    if as_json:
        emit_json({"models": rows, "not_modelled": NOT_MODELLED})
        return
    from rich.table import Table

    from ..report.tables import make_console

    t = Table(title="rlsim catalog models (--model takes the name, an alias or any Hugging Face id listed)",
              title_justify="left")
    for c in ("model", "Hugging Face ids", "params (B)", "active (B)", "default workload", "drafters"):
        t.add_column(c, justify="right" if "(B)" in c else "left")
    for r in rows:
        t.add_row(r["name"] + (f" ({', '.join(r['aliases'])})" if r["aliases"] else ""), "\n".join(r["hf_ids"]),
                  f"{r['params_b']:.1f}", f"{r['active_params_b']:.1f}", r["default_workload"] or "-",
                  ", ".join(sorted(r["drafts"]) + (["mtp"] if r["mtp_num_layers"] else [])) or "-")
    c = make_console()
    c.print(t)
    for fam, why in NOT_MODELLED.items():
        c.print(f"[dim]not in the catalog: {fam}: {why}[/dim]")
