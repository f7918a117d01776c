"""Performance harness: `linsolve bench [--quick]` measures linsolve against hand-written baselines.

Every benchmark runs linsolve and its baselines on the same problem in the same run and reports
ratios, compile time apart from run time, point-steps/s, achieved GFLOP/s from an analytic FLOP
count and the percentage of the machine's GEMM peak measured by the same run; the results go to
``benchmarks/RESULTS.md`` as one markdown table per benchmark.
"""

from __future__ import annotations

import time

from ._machine import gemm_peak as gemm_peak
from ._machine import machine_info as machine_info
from ._suite import BENCHMARKS as BENCHMARKS
from ._suite import flops_per_step as flops_per_step
from ._suite import peaks as peaks

__all__ = ["run", "to_markdown", "BENCHMARKS", "flops_per_step", "machine_info", "gemm_peak", "peaks"]


def run(*, quick: bool = False, only=None, echo=print) -> dict:
    """Run the benchmarks (all, or the names in `only`); returns machine info, peaks and tables."""
    names = list(BENCHMARKS) if not only else list(only)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise ValueError(f"`only` must name benchmarks in {sorted(BENCHMARKS)}; got {unknown}.")
    info = machine_info()
    measured = peaks()
    echo(
        f"GEMM peak: float32 {measured['float32']['peak']:.1f} GFLOP/s, "
        f"float64 {measured['float64']['peak']:.1f} GFLOP/s"
    )
    tables = []
    for name in names:
        start = time.perf_counter()
        table = BENCHMARKS[name](quick, measured)
        table["seconds"] = time.perf_counter() - start
        echo(_table(table))
        tables.append(table)
    return {"info": info, "peaks": measured, "tables": tables, "quick": quick}


def _table(table: dict) -> str:
    lines = [
        f"### {table['title']}",
        "",
        "| " + " | ".join(table["columns"]) + " |",
        "|" + "---|" * len(table["columns"]),
    ]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in table["rows"]]
    lines += [""] + [f"- {note}" for note in table["notes"]]
    return "\n".join(lines) + "\n"


def to_markdown(results: dict) -> str:
    """The RESULTS.md text of one harness run."""
    info = results["info"]
    mode = "quick" if results["quick"] else "full"
    lines = [f"## Run of {info['date']} ({mode})", ""]
    lines += [f"- {k}: {v}" for k, v in info.items() if k != "date"]
    for dtype, p in results["peaks"].items():
        lines.append(
            f"- GEMM peak {dtype}: {p['peak']:.1f} GFLOP/s (JAX {p['jax']:.1f}, NumPy {p['numpy']:.1f})"
        )
    lines.append("")
    return "\n".join(lines) + "\n" + "\n".join(_table(t) for t in results["tables"])
