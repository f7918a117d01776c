"""The theorem-check panel: every closed form against independent numerical integration.

``linsolve.verify.verify()`` (and ``linsolve verify`` on the command line) draws random cases for
each family (seeded), compares the closed form with ``simulate.gradient_flow`` on the original
parameter-space ODE, and measures conserved-quantity drift and the ``t = 0`` / ``t = inf`` limits.
"""

from __future__ import annotations

import importlib
import json
import time

import jax
import jax.random as jr

from ._core import Check as Check

__all__ = ["Check", "FAMILIES", "verify", "format_table", "to_json"]

FAMILIES = (
    "mode",
    "saxe",
    "one_hidden_layer",
    "single_neuron",
    "lambda_balanced",
    "linearized",
)


def verify(*, draws: int = 20, seed: int = 0, families=None, progress=None) -> list[Check]:
    """Run the panel in float64; returns one :class:`Check` per family.

    **Arguments:**

    - `draws`: random cases per family.
    - `seed`: PRNG seed (each family gets its own fold of it).
    - `families`: names from :data:`FAMILIES` (default: all).
    - `progress`: optional callable ``(family, seconds)`` called after each family.
    """
    families = FAMILIES if families is None else tuple(families)
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ValueError(f"`families` must be drawn from {FAMILIES}; got unknown {unknown}.")
    if draws < 1:
        raise ValueError(f"`draws` must be a positive integer; got {draws}.")
    results = []
    with jax.enable_x64(True):
        for i, name in enumerate(families):
            module = importlib.import_module(f"linsolve.verify._{name}")
            start = time.perf_counter()
            results.append(module.check(jr.fold_in(jr.PRNGKey(seed), i), draws))
            if progress is not None:
                progress(name, time.perf_counter() - start)
    return results


def format_table(results: list[Check]) -> str:
    """Plain-text table: family, cases, max relative error, max invariant drift, limits, verdict."""
    head = f"{'family':<18}{'cases':>6}{'max rel err':>14}{'inv. drift':>13}{'limits':>12}  result"
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(
            f"{r.family:<18}{r.cases:>6}{r.max_rel_error:>14.2e}{r.max_invariant_drift:>13.2e}"
            f"{r.limits_error:>12.2e}  {'pass' if r.passed else 'FAIL'}"
        )
    passed = sum(r.passed for r in results)
    lines.append(
        f"{passed} passed, {len(results) - passed} failed (tolerance {results[0].tolerance:g})"
        if results
        else "no families run"
    )
    return "\n".join(lines)


def to_json(results: list[Check]) -> str:
    return json.dumps(
        {"checks": [r.as_dict() for r in results], "passed": all(r.passed for r in results)},
        indent=2,
    )
