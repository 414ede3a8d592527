"""The calibration tables' CSV schema: the one definition shared by the microbenchmarks that write the
tables (``mb_common.CsvTable``) and the cost model that reads them (``rlsim/costmodel/calib_tables.py``).

Pure Python, imports nothing: the microbenchmarks import it as a sibling module when run as scripts on a
GPU machine (``python rlsim/calibration/microbench.py``), the simulator as ``rlsim.calibration.csv_schema``.
"""
from __future__ import annotations

# ---------------------------------------------------------------------------
# Written by the microbenchmarks (a contract with the cost model: keep the names).
# Each CSV has a `gpu` column; `KEYS` are the columns that identify a row for
# resuming. Extra columns beyond the brief (repeats, timing, backend details) are
# appended at the end and are informational.
# ---------------------------------------------------------------------------
TIME_COLS = ["time_s", "time_p10_s", "time_p90_s", "repeats", "timing"]

SCHEMAS: dict[str, list[str]] = {
    "gemm": ["gpu", "dtype", "m", "n", "k", *TIME_COLS, "m_run", "source"],
    "attention": [
        "gpu", "phase", "batch", "q_len", "kv_len_mean", "kv_len_min", "kv_len_max",
        "kv_dist", "total_kv_tokens", "total_q_tokens", "n_q_heads", "n_kv_heads",
        "head_dim", "backend", *TIME_COLS, "chunked", "alt_backend", "alt_time_s",
    ],
    "moe": [
        "gpu", "dtype", "tokens", "num_experts", "top_k", "hidden", "moe_intermediate",
        "distinct_experts", *TIME_COLS, "local_assignments", "backend",
    ],
    "moe_fused": [
        "gpu", "dtype", "tokens", "num_experts", "top_k", "hidden", "moe_intermediate",
        "distinct_experts", *TIME_COLS, "local_assignments", "backend",
    ],
    "elementwise": ["gpu", "op", "tokens", "hidden", *TIME_COLS, "impl"],
    "sampling": ["gpu", "op", "rows", "vocab", *TIME_COLS],
    "overhead": ["gpu", "mode", "n_kernels", "time_per_kernel_s", "time_s", "repeats"],
    "collectives": [
        "gpu", "op", "ranks", "bytes", "time_s", "busbw_bytes_per_s", "time_p10_s",
        "time_p90_s", "algbw_bytes_per_s", "repeats", "time_graph_s",
    ],
}

KEYS: dict[str, list[str]] = {
    "gemm": ["gpu", "dtype", "m", "n", "k"],
    "attention": ["gpu", "phase", "batch", "q_len", "kv_len_mean", "kv_dist", "n_q_heads",
                  "n_kv_heads", "head_dim", "chunked"],
    "moe": ["gpu", "dtype", "tokens", "num_experts", "top_k", "hidden", "moe_intermediate"],
    "moe_fused": ["gpu", "dtype", "tokens", "num_experts", "top_k", "hidden", "moe_intermediate"],
    "elementwise": ["gpu", "op", "tokens", "hidden"],
    "sampling": ["gpu", "op", "rows", "vocab"],
    "overhead": ["gpu", "mode", "n_kernels"],
    "collectives": ["gpu", "op", "ranks", "bytes"],
}

# ---------------------------------------------------------------------------
# Read by the cost model: per file, the columns the fit needs (a subset of the file's schema, checked
# below); the required tables, then the optional ones. The order of each list is the order error
# messages name the columns in.
# ---------------------------------------------------------------------------
REQUIRED: dict[str, list[str]] = {
    "gemm.csv": ["dtype", "m", "n", "k", "time_s"],
    "attention.csv": ["phase", "batch", "q_len", "kv_len_mean", "total_kv_tokens", "total_q_tokens", "n_q_heads",
                      "n_kv_heads", "head_dim", "time_s"],
    "moe.csv": ["dtype", "tokens", "num_experts", "top_k", "hidden", "moe_intermediate", "distinct_experts",
                "local_assignments", "time_s"],
    "elementwise.csv": ["op", "tokens", "hidden", "time_s"],
    "sampling.csv": ["op", "rows", "vocab", "time_s"],
    "overhead.csv": ["mode", "n_kernels", "time_per_kernel_s"],
}
OPTIONAL: dict[str, list[str]] = {"collectives.csv": ["op", "ranks", "bytes", "time_s"],
                                  "moe_fused.csv": REQUIRED["moe.csv"]}
# columns holding text (every other column read is numeric)
TEXT_COLS = {"gpu", "dtype", "phase", "op", "mode", "kv_dist", "backend", "timing", "source", "impl", "alt_backend"}

for _name, _cols in {**REQUIRED, **OPTIONAL}.items():
    _extra = sorted(set(_cols) - set(SCHEMAS[_name.removesuffix(".csv")]))
    if _extra:
        raise AssertionError(f"csv_schema: {_name} is read with columns {_extra} that the microbenchmarks do not write")
del _name, _cols, _extra
