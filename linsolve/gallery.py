"""The study gallery: run the scripts of ``experiments/`` by name (`linsolve reproduce`), as plain
Python or as Jupyter notebooks.

Each script has ``main(smoke: bool)`` and a module-level ``FIGURES`` folder (the repository's
``figures/``) and ends with ``script_main(main, __doc__)``. The scripts live in the source checkout,
beside the package; the command finds them there (or in ``./experiments``).

One source, three ways to run it:

* ``linsolve reproduce NAME [--smoke] [--out DIR]`` imports the script and calls ``main``;
* ``python experiments/NAME.py [--smoke]`` runs it as a script (`script_main`);
* the scripts with ``# %%`` cells (jupytext percent format) are also notebooks: ``jupytext --to
  ipynb experiments/NAME.py`` writes ``NAME.ipynb`` (not committed), and Jupyter with jupytext
  opens the ``.py`` directly (``jupytext.toml`` pairs the two). Run in a notebook, `script_main`
  also shows the figures it wrote inline.

Two environment variables steer `script_main` (so notebooks, which take no command-line flags, can
be run small and without touching the committed figures, as the tests and the docs build do):

* ``LINSOLVE_SMOKE=1`` runs ``main(smoke=True)``, as ``--smoke`` does (``0``, ``false``, ``no``
  or empty: off);
* ``LINSOLVE_FIGURES=DIR`` writes the figures to ``DIR`` (created if needed) instead of the
  repository's ``figures/``.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import os
import pathlib
import sys

__all__ = [
    "FIGURES_ENV",
    "SMOKE_ENV",
    "experiments_dir",
    "figures_dir",
    "list_experiments",
    "load_experiment",
    "run_experiment",
    "script_main",
    "smoke_from_env",
]

SMOKE_ENV = "LINSOLVE_SMOKE"
FIGURES_ENV = "LINSOLVE_FIGURES"
_FALSE = ("", "0", "false", "no", "off")


def experiments_dir() -> pathlib.Path:
    """The ``experiments/`` folder of the source checkout (or of the working directory)."""
    for root in (pathlib.Path(__file__).resolve().parent.parent, pathlib.Path.cwd()):
        folder = root / "experiments"
        if folder.is_dir():
            return folder
    raise FileNotFoundError(
        "no experiments/ folder: `linsolve reproduce` runs the scripts of a source checkout "
        "(git clone, then pip install -e .), or run it from the checkout's root."
    )


def figures_dir() -> pathlib.Path:
    """Where the study scripts write their figures: ``$LINSOLVE_FIGURES`` when set, else the
    ``figures/`` folder beside ``experiments/``. (A notebook has no ``__file__``, so the scripts
    ask here rather than locating ``figures/`` from their own path.)"""
    folder = os.environ.get(FIGURES_ENV, "").strip()
    return pathlib.Path(folder) if folder else experiments_dir().parent / "figures"


def smoke_from_env() -> bool:
    """Whether ``$LINSOLVE_SMOKE`` asks for the small run (set and not ``0``/``false``/``no``)."""
    return os.environ.get(SMOKE_ENV, "").strip().lower() not in _FALSE


def list_experiments() -> dict[str, str]:
    """``{name: first line of its docstring}`` for every script, sorted by name."""
    out = {}
    for path in sorted(experiments_dir().glob("*.py")):
        if path.name.startswith("_"):
            continue
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        out[path.stem] = doc.strip().splitlines()[0] if doc.strip() else ""
    return out


def load_experiment(name: str):
    """Import ``experiments/NAME.py`` as a module (without running its main)."""
    names = list_experiments()
    if name not in names:
        raise ValueError(f"`name` must be one of {sorted(names)}; got {name!r}.")
    path = experiments_dir() / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"linsolve_experiments.{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_experiment(name: str, *, smoke: bool = False, out: str | None = None):
    """Run ``experiments/NAME.py``'s ``main(smoke)``; figures go to `out` when given (the
    script's ``FIGURES`` folder is redirected), else to the repository's ``figures/``."""
    module = load_experiment(name)
    if out is not None:
        folder = pathlib.Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        module.FIGURES = folder
    return module.main(smoke=smoke)


def _in_notebook() -> bool:
    """Whether this runs inside an IPython kernel (Jupyter, nbclient), without importing IPython."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def _pngs(folder: pathlib.Path) -> dict[pathlib.Path, int]:
    return {p: p.stat().st_mtime_ns for p in folder.glob("*.png")} if folder.is_dir() else {}


def script_main(main, doc: str):
    """The command line of a study script: ``python experiments/NAME.py [--smoke]`` calls
    ``main(smoke)`` and returns its result.

    ``--smoke`` or ``$LINSOLVE_SMOKE`` selects the small run; ``$LINSOLVE_FIGURES`` redirects the
    figures (the ``FIGURES`` global of `main`'s module). Without it a small run writes into
    ``figures_smoke/`` beside ``figures/`` (as ``linsolve reproduce NAME --smoke`` does), so it never
    overwrites a committed figure. Unknown arguments are ignored, so a script also runs inside
    Jupyter; there the PNG files that `main` wrote are displayed below the cell.
    """
    parser = argparse.ArgumentParser(description=(doc or "").strip().split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="small, fast run (see the header)")
    smoke = parser.parse_known_args()[0].smoke or smoke_from_env()
    namespace = main.__globals__
    if os.environ.get(FIGURES_ENV, "").strip():
        namespace["FIGURES"] = figures_dir()
    elif smoke:
        namespace["FIGURES"] = pathlib.Path(namespace.get("FIGURES", figures_dir())).with_name(
            "figures_smoke"
        )
    folder = pathlib.Path(namespace.get("FIGURES", figures_dir()))
    folder.mkdir(parents=True, exist_ok=True)
    before = _pngs(folder)
    result = main(smoke=smoke)
    if _in_notebook():
        from IPython.display import Image, display

        after = _pngs(folder)
        written = sorted((after[p], p) for p in after if before.get(p) != after[p])
        for _, path in written:  # in the order main wrote them
            display(Image(filename=str(path)))
    return result
