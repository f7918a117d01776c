"""The `linsolve` command: `demo` (the main job) and `verify` (the theorem-check panel)."""

from __future__ import annotations

import argparse
import sys


def _demo(args) -> int:
    from ._demo import format_report, run

    print(format_report(run(smoke=args.smoke, out=args.out)))
    return 0


def _verify(args) -> int:
    from .verify import format_table, to_json, verify

    def progress(name, seconds):
        if not args.json:
            print(f"  checked {name} ({seconds:.1f} s)", file=sys.stderr)

    results = verify(
        draws=args.draws, seed=args.seed, families=args.family or None, progress=progress
    )
    print(to_json(results) if args.json else format_table(results))
    return 0 if all(r.passed for r in results) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="linsolve",
        description="Exact solutions and simulators of linear and shallow network training.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="stage-like learning of a teacher: theory vs simulation")
    demo.add_argument("--out", default="demo_out", help="folder for figures (default: demo_out)")
    demo.add_argument("--smoke", action="store_true", help="a faster, coarser run")
    demo.set_defaults(func=_demo)
    verify = sub.add_parser("verify", help="every closed form against numerical integration")
    verify.add_argument("--json", action="store_true", help="print the results as JSON")
    verify.add_argument("--draws", type=int, default=20, help="random cases per family")
    verify.add_argument("--seed", type=int, default=0)
    verify.add_argument("--family", action="append", help="check only this family (repeatable)")
    verify.set_defaults(func=_verify)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
