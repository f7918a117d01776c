"""The study gallery: run the scripts of ``experiments/`` by name (`linsolve reproduce`).

Each script is a plain Python file with ``main(smoke: bool)`` and a module-level ``FIGURES`` folder
(the repository's ``figures/``). The scripts live in the source checkout, beside the package; the
command finds them there (or in ``./experiments``).
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import pathlib

__all__ = ["experiments_dir", "list_experiments", "load_experiment", "run_experiment", "script_main"]


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


def script_main(main, doc: str) -> None:
    """The command line of a study script: ``python experiments/NAME.py [--smoke]`` calls
    ``main(smoke)``. Unknown arguments are ignored, so a script also runs inside Jupyter."""
    parser = argparse.ArgumentParser(description=(doc or "").strip().split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="small, fast run (see the header)")
    main(smoke=parser.parse_known_args()[0].smoke)
