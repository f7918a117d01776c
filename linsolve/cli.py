"""The `linsolve` command: `demo`, `verify`, `sweep`, `plot`."""

from __future__ import annotations

import argparse
import sys


def _demo(args) -> int:
    from ._demo import format_phase_diagram, format_report, phase_diagram, run

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


def _sweep(args) -> int:
    import json
    import os

    import jax

    if args.x64:
        jax.config.update("jax_enable_x64", True)
    from .sweep import ConfigError, load_config, run_config

    try:
        config = load_config(args.config)
    except ConfigError as error:
        print(f"linsolve sweep: error: {error}", file=sys.stderr)
        return 2
    meta = os.path.join(args.out, "meta.json")
    if os.path.exists(meta) and not args.resume:
        print(
            f"linsolve sweep: error: {args.out!r} already holds a sweep; pass --resume to continue "
            "it, or choose another --out.",
            file=sys.stderr,
        )
        return 2
    if args.chunk_size is not None:
        config.chunk_size = args.chunk_size
    executor, client = None, None
    if args.scheduler:
        try:
            from dask.distributed import Client
        except ImportError:
            print(
                "linsolve sweep: error: --scheduler needs Dask: pip install 'linsolve[distributed]'",
                file=sys.stderr,
            )
            return 2
        client = Client(args.scheduler)
        executor = client.get_executor()
    try:
        result = run_config(
            config, out=args.out, executor=executor, progress=not args.quiet, resume=args.resume
        )
    except ValueError as error:
        print(f"linsolve sweep: error: {error}", file=sys.stderr)
        return 2
    finally:
        if client is not None:
            client.close()
    summary = {name: float(abs(result[name]).max()) for name in ("error",) if name in result}
    print(
        f"{config.study.name}: {result.grid.size} points {dict(zip(result.grid.names, result.grid.shape))}"
        f" -> {os.path.join(args.out, 'result.npz')} {json.dumps(summary)}"
    )
    return 0


def _plot(args) -> int:
    import os

    from .plot import sweep_figures
    from .sweep import STUDIES, SweepResult

    try:
        result = SweepResult.load(args.dir)
    except ValueError as error:
        print(f"linsolve plot: error: {error}", file=sys.stderr)
        return 2
    study = STUDIES.get((result.meta.get("config") or {}).get("study", ""))
    if study is None:
        print(
            "linsolve plot: error: the result does not name a built-in study; use "
            "linsolve.plot.heatmap from Python.",
            file=sys.stderr,
        )
        return 2
    layout = dict(study.plot)
    for axis in ("x", "y"):  # fall back to the swept axes when the layout's are fixed
        if len(result.axes[layout[axis]]) < 2:
            swept = [
                a for a, v in result.axes.items() if len(v) > 1 and a != layout["y" if axis == "x" else "x"]
            ]
            if swept:
                layout[axis] = swept[0]
    for path in sweep_figures(result, args.out or os.path.join(args.dir, "figures"), layout):
        print(path)
    return 0


def _bench(args) -> int:
    import os

    import jax

    jax.config.update("jax_default_matmul_precision", args.precision)
    from .bench import run, to_markdown

    try:
        results = run(quick=args.quick, only=args.only)
    except ValueError as error:
        print(f"linsolve bench: error: {error}", file=sys.stderr)
        return 2
    out = args.out
    if out is None and os.path.isdir("benchmarks"):
        out = os.path.join("benchmarks", "RESULTS.md")
    if out:
        _prepend_run(out, to_markdown(results))
        print(f"results written to {out}")
    return 0


def _prepend_run(path: str, text: str) -> None:
    """Newest run first, below the file's own header (kept as it is)."""
    import os

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
    run_experiment(args.name, smoke=args.smoke, out=out)
    return 0


def _use_all_cores() -> None:
    """One XLA CPU device per core, so sweeps shard their chunks over the cores."""
    from .sweep import cpu_devices

    try:
        cpu_devices()
    except RuntimeError:  # JAX already started (e.g. main() called in-process): keep its devices
        pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="linsolve",
        description="Exact solutions and simulators of linear and shallow network training.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo", help="one-hidden-layer phase diagram and stage-like learning: theory vs simulation"
    )
    demo.add_argument("--out", default="demo_out", help="folder for figures (default: demo_out)")
    demo.add_argument("--smoke", action="store_true", help="a faster, coarser run")
    demo.set_defaults(func=_demo)
    verify = sub.add_parser("verify", help="every closed form against numerical integration")
    verify.add_argument("--json", action="store_true", help="print the results as JSON")
    verify.add_argument("--draws", type=int, default=20, help="random cases per family")
    verify.add_argument("--seed", type=int, default=0)
    verify.add_argument("--family", action="append", help="check only this family (repeatable)")
    verify.set_defaults(func=_verify)
    sw = sub.add_parser("sweep", help="run a phase-diagram sweep from a TOML config or study name")
    sw.add_argument(
        "config",
        help="CONFIG.toml, or a built-in study: one-hidden-layer, parametrizations, unbalanced, lambda",
    )
    sw.add_argument("--out", required=True, help="result folder (resumable)")
    sw.add_argument("--resume", action="store_true", help="continue a sweep already in --out")
    sw.add_argument("--x64", action="store_true", help="run in float64")
    sw.add_argument("--scheduler", help="address of a Dask scheduler to run the chunks on")
    sw.add_argument("--chunk-size", type=int, help="points per compiled call")
    sw.add_argument("--quiet", action="store_true", help="no progress bar")
    sw.set_defaults(func=_sweep)
    pl = sub.add_parser("plot", help="heat maps of a finished sweep")
    pl.add_argument("dir", help="the sweep's --out folder")
    pl.add_argument("--out", help="figure folder (default DIR/figures)")
    pl.set_defaults(func=_plot)
    be = sub.add_parser("bench", help="performance harness against NumPy / PyTorch baselines")
    be.add_argument("--quick", action="store_true", help="small sizes (a few minutes)")
    be.add_argument("--only", nargs="+", metavar="B", help="benchmarks to run (B1 ... B6)")
    be.add_argument("--out", help="markdown file to add the run to (default benchmarks/RESULTS.md)")
    be.add_argument(
        "--precision", default="highest", help="jax_default_matmul_precision (default: highest)"
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
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("demo", "sweep", "bench"):
        _use_all_cores()
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
