"""The `linsolve` command: `demo`, `verify`, `sweep`, `plot`, `bench`, `reproduce`.

A user mistake (a bad argument, an unusable `--out`, an invalid config, a sweep store that holds
another sweep) ends with one line ``linsolve CMD: error: ...`` on stderr and exit status 2, never a
traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

_SCHEDULER_TIMEOUT_S = 5


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (``linsolve CMD: error: ...``, exit status 2) and no usage dump."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text!r}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"must be an integer in 0..2**32-1; got {text!r}")
    return value


def _check_out(path: str, *, option: str = "--out", folder: bool = True) -> None:
    """Raise ValueError unless `path` can be written: an existing folder (file: `folder` False)
    or a new name in an existing, writable folder. Probes with a temporary file, before any work."""
    import tempfile

    where = f"`{option}` {path!r}"
    if os.path.exists(path):
        if folder and not os.path.isdir(path):
            raise ValueError(f"{where} is a file; give a folder (new or existing).")
        if not folder and os.path.isdir(path):
            raise ValueError(f"{where} is a folder; give a file name.")
    probe = path if folder and os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(probe):
        raise ValueError(f"{where}: its parent folder {probe!r} does not exist; create it first.")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as error:
        raise ValueError(f"{where}: cannot write in {probe!r} ({error.strerror or error}).") from None


def _demo(args) -> int:
    from ._demo import format_phase_diagram, format_report, phase_diagram, run

    _check_out(args.out)
    print(format_phase_diagram(phase_diagram(smoke=args.smoke, out=args.out)), flush=True)
    print()
    print(format_report(run(smoke=args.smoke, out=args.out)))
    return 0


def _verify(args) -> int:
    from .verify import format_table, to_json, verify

    def progress(name, seconds):
        if not args.json:
            print(f"  checked {name} ({seconds:.1f} s)", file=sys.stderr)

    results = verify(draws=args.draws, seed=args.seed, families=args.family or None, progress=progress)
    print(to_json(results) if args.json else format_table(results))
    return 0 if all(r.passed for r in results) else 1


def _dask_client(address: str):
    """A Dask client of the scheduler at `address`; ValueError (naming it) if it is unreachable."""
    try:
        from dask.distributed import Client
    except ImportError:
        raise ValueError("`--scheduler` needs Dask: pip install 'linsolve[distributed]'") from None
    try:
        return Client(address, timeout=_SCHEDULER_TIMEOUT_S)
    except (OSError, ValueError) as error:
        raise ValueError(
            f"`--scheduler`: no Dask scheduler reachable at {address!r} within {_SCHEDULER_TIMEOUT_S} s "
            f"({error})."
        ) from None


def _sweep_summary(config, result, out: str) -> str:
    """Where the result went, the outcome counts and the largest theory-vs-simulation error."""
    import numpy as np

    from .sweep._classify import OUTCOMES, outcomes

    shape = dict(zip(result.grid.names, result.grid.shape))
    labels = outcomes(result)
    counts = ", ".join(f"{name} {int(np.sum(labels == name))}" for name in OUTCOMES)
    where, dtype = os.path.join(out, "result.npz"), result.meta.get("dtype", "?")
    line = f"{config.study.name} ({dtype}): {result.grid.size} points {shape} -> {where}"
    if "error" in result:
        error = np.asarray(result["error"], float)[labels == "converged"]
        worst = f"{float(np.max(error)):.1e}" if error.size else "n/a"
        line += f"\n{counts}; max error (theory vs simulation, converged points) {worst}"
    else:
        line += f"\n{counts}"
    return line


def _sweep(args) -> int:
    import jax

    if args.x64:
        jax.config.update("jax_enable_x64", True)
    from .sweep import load_config, run_config

    config = load_config(args.config)
    _check_out(args.out)  # a store holding another sweep: sweep.run raises StoreError before computing
    if args.chunk_size is not None:
        config.chunk_size = args.chunk_size
    client = _dask_client(args.scheduler) if args.scheduler else None
    try:
        result = run_config(
            config,
            out=args.out,
            executor=None if client is None else client.get_executor(),
            progress=not args.quiet,
            resume=args.resume,
            overwrite=args.overwrite,
        )
    finally:
        if client is not None:
            client.close()
    print(_sweep_summary(config, result, args.out))
    return 0


def _plot(args) -> int:
    """Figures of a finished sweep; `--select AXIS=VALUE` cuts axes to their nearest grid value.

    Axes beyond the study's two plotted ones become small multiples (columns, then rows, at most 16
    panels a figure); any further axis gives one file per value (``..._<axis>-<value>.png``).
    """
    import zipfile

    from .plot import sweep_figures
    from .plot._facets import parse_select, select_nearest
    from .sweep import STUDIES, SweepResult

    def fail(message: str) -> int:
        print(f"linsolve plot: error: {message}", file=sys.stderr)
        return 2

    if not os.path.exists(args.dir):
        return fail(f"{args.dir!r} does not exist; give the --out folder of `linsolve sweep`.")
    try:
        result = SweepResult.load(args.dir)
    except (ValueError, OSError, KeyError, zipfile.BadZipFile) as error:
        return fail(f"cannot read a sweep result from {args.dir!r}: {error}")
    study = STUDIES.get((result.meta.get("config") or {}).get("study", ""))
    if study is None:
        return fail("the result does not name a built-in study; use linsolve.plot.heatmap from Python.")
    labels = {**study.labels}
    out = args.out or os.path.join(args.dir, "figures")
    try:
        selection = parse_select(args.select or [], result.axes, labels)
        result, notes = select_nearest(result, selection, labels)
        _check_out(out)
    except ValueError as error:
        return fail(str(error))
    for note in notes:
        print(f"linsolve plot: note: {note}", file=sys.stderr)
    for path in sweep_figures(result, out, study.plot, labels=labels, select=selection):
        print(path)
    return 0


def _bench(args) -> int:
    import jax

    if args.out:
        _check_out(args.out, folder=False)
    jax.config.update("jax_default_matmul_precision", args.precision)
    from .bench import run, to_markdown

    results = run(quick=args.quick, only=args.only)
    out = args.out
    if out is None and os.path.isdir("benchmarks"):
        out = os.path.join("benchmarks", "RESULTS.md")
    if out:
        _prepend_run(out, to_markdown(results))
        print(f"results written to {out}")
    return 0


def _prepend_run(path: str, text: str) -> None:
    """Newest run first, below the file's own header (kept as it is)."""
    header, runs = "# Benchmark results\n\nNewest run first; `linsolve bench` adds one.\n\n", ""
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
        cut = old.find("## Run of")
        header, runs = (old, "") if cut < 0 else (old[:cut], old[cut:])
    with open(path, "w") as f:
        f.write(header + text + "\n" + runs)


def _reproduce(args) -> int:
    from .gallery import list_experiments, run_experiment

    try:
        names = list_experiments()
    except FileNotFoundError as error:
        print(f"linsolve reproduce: error: {error}", file=sys.stderr)
        return 2
    if args.list or not args.name:
        width = max(map(len, names), default=0)
        for name, summary in names.items():
            print(f"{name:<{width}}  {summary}")
        return 0
    if args.name not in names:
        print(f"linsolve reproduce: error: no experiment {args.name!r}; see --list", file=sys.stderr)
        return 2
    out = args.out if args.out is not None else ("figures_smoke" if args.smoke else None)
    if out is not None:
        _check_out(out)
    run_experiment(args.name, smoke=args.smoke, out=out)
    return 0


def _explore(args) -> int:
    """List the explorers, or write one's self-contained HTML page (every setting precomputed)."""
    import time

    from .explore import list_explorers

    names = list_explorers()
    if args.list or not args.name:
        width = max(map(len, names), default=0)
        for name, title in names.items():
            print(f"{name:<{width}}  {title}")
        return 0
    if args.name not in names:
        print(f"linsolve explore: error: no explorer {args.name!r}; choose from "
              f"{', '.join(names)} (see --list)", file=sys.stderr)
        return 2
    out = args.out if args.out is not None else f"{args.name}.html"
    _check_out(out, folder=False)
    try:
        import plotly  # noqa: F401
    except ImportError:
        print('linsolve explore: error: needs plotly: pip install "linsolve[explore]"', file=sys.stderr)
        return 2
    import jax

    jax.config.update("jax_enable_x64", True)  # precompute the closed forms in float64
    from .explore import write_html

    start = time.perf_counter()
    path = write_html(args.name, out, smoke=args.smoke)
    size = os.path.getsize(path) / 1e6
    print(f"{path} ({size:.1f} MB, {time.perf_counter() - start:.1f} s); open it in a browser, "
          "no network needed")
    return 0


def _use_all_cores() -> None:
    """One XLA CPU device per core, so sweeps shard their chunks over the cores."""
    from .sweep import cpu_devices

    try:
        cpu_devices()
    except RuntimeError:  # JAX already started (e.g. main() called in-process): keep its devices
        pass


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .verify import FAMILIES

    parser = _Parser(
        prog="linsolve",
        description="Exact solutions and simulators of linear and shallow network training.",
    )
    parser.add_argument("--version", action="version", version=f"linsolve {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo", help="one-hidden-layer phase diagram and stage-like learning: theory vs simulation"
    )
    demo.add_argument("--out", default="demo_out", help="folder for figures (default: demo_out)")
    demo.add_argument("--smoke", action="store_true", help="a faster, coarser run")
    demo.set_defaults(func=_demo)
    verify = sub.add_parser(
        "verify",
        help="every closed form against numerical integration",
        description="Check every closed form against high-accuracy numerical integration on random "
        "draws (float64); prints the max errors; exit status 1 on any failure.",
    )
    verify.add_argument("--json", action="store_true", help="print the results as JSON")
    verify.add_argument(
        "--draws", type=_positive_int, default=20, help="random cases per family (default: %(default)s)"
    )
    verify.add_argument("--seed", type=_seed, default=0, help="PRNG seed (default: %(default)s)")
    verify.add_argument(
        "--family",
        action="append",
        choices=FAMILIES,
        metavar="FAMILY",
        help=f"check only this family (repeatable; default: all of {', '.join(FAMILIES)})",
    )
    verify.set_defaults(func=_verify)
    sw = sub.add_parser("sweep", help="run a phase-diagram sweep from a TOML config or study name")
    sw.add_argument(
        "config",
        help="CONFIG.toml, or a built-in study: one-hidden-layer, parametrizations, unbalanced, lambda",
    )
    sw.add_argument("--out", required=True, help="result folder (resumable)")
    sw.add_argument("--resume", action="store_true", help="continue a sweep already in --out")
    sw.add_argument(
        "--overwrite", action="store_true", help="discard the results already in --out and recompute"
    )
    sw.add_argument("--x64", action="store_true", help="run in float64")
    sw.add_argument(
        "--scheduler",
        help=f"address of a Dask scheduler to run the chunks on (fails after {_SCHEDULER_TIMEOUT_S} s "
        "if unreachable)",
    )
    sw.add_argument("--chunk-size", type=_positive_int, help="points per stored chunk")
    sw.add_argument("--quiet", action="store_true", help="no progress bar")
    sw.set_defaults(func=_sweep)
    pl = sub.add_parser("plot", help="heat maps of a finished sweep")
    pl.add_argument("dir", help="the sweep's --out folder")
    pl.add_argument("--out", help="figure folder (default DIR/figures)")
    pl.add_argument(
        "--select",
        action="append",
        metavar="AXIS=VALUE",
        help="plot only the grid value of AXIS nearest VALUE (repeatable); axes beyond the two plotted "
        "ones otherwise become small multiples, or one file per value past 16 panels",
    )
    pl.set_defaults(func=_plot)
    be = sub.add_parser("bench", help="performance harness against NumPy / PyTorch baselines")
    be.add_argument("--quick", action="store_true", help="small sizes (a few minutes)")
    be.add_argument("--only", nargs="+", metavar="B", help="benchmarks to run (B1 ... B6)")
    be.add_argument("--out", help="markdown file to add the run to (default benchmarks/RESULTS.md)")
    be.add_argument(
        "--precision",
        default="highest",
        choices=("default", "high", "highest", "bfloat16", "tensorfloat32", "float32"),
        help="jax_default_matmul_precision (default: highest)",
    )
    be.set_defaults(func=_bench)
    rp = sub.add_parser("reproduce", help="run a study of experiments/ by name (see --list)")
    rp.add_argument("name", nargs="?", help="script name, e.g. saxe_modes")
    rp.add_argument("--list", action="store_true", help="list the studies")
    rp.add_argument("--smoke", action="store_true", help="small, fast version")
    rp.add_argument(
        "--out", help="figure folder (default: the repository's figures/; figures_smoke/ with --smoke)"
    )
    rp.set_defaults(func=_reproduce)
    ex = sub.add_parser(
        "explore",
        help="write an interactive, self-contained HTML page of an explorer (see --list)",
        description="Write one HTML file with sliders over a grid of settings and the exact "
        "solution at each (plotly.js inlined; no network needed to view it).",
    )
    ex.add_argument("name", nargs="?", help="explorer name: saxe-stages, lazy-rich, width-phase")
    ex.add_argument("--list", action="store_true", help="list the explorers")
    ex.add_argument("--out", help="HTML file to write (default: NAME.html)")
    ex.add_argument("--smoke", action="store_true", help="at most three values per slider (fast)")
    ex.set_defaults(func=_explore)
    return parser


def main(argv=None) -> int:
    """Run the command line; returns the exit status (2: a user mistake, told in one line)."""
    import zipfile

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit:  # --help, --version and usage errors: return their status
        return exit.code if isinstance(exit.code, int) else 0
    if args.command in ("demo", "sweep", "bench"):
        _use_all_cores()
    try:
        return args.func(args)
    except (ValueError, OSError, zipfile.BadZipFile) as error:  # bad input, config, files
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"linsolve {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = " (rerun with --resume to continue the sweep)" if args.command == "sweep" else ""
        print(f"linsolve {args.command}: interrupted{hint}", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
