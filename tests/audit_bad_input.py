"""Classify every call of the bad-input table (tests/test_bad_input.py) by what the library does.

    python tests/audit_bad_input.py [--timeout SECONDS] [--json PATH]

Each call runs in a worker process (restarted after a hang) and is put in one class:

- (a) ``clear``: a ValueError whose message names the argument (```arg```, ```arg[i]```);
- (b) ``unclear``: any other exception, or a ValueError that does not name the argument;
- (c) ``silent``: the call returned (NaN, inf or nonsense accepted without a word);
- (d) ``hang``: no answer within the timeout.

Prints one line per call and the counts; exit status 1 unless every call is (a).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys

CLASSES = ("clear", "unclear", "silent", "hang")


def _worker(requests, answers):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import jax

    jax.config.update("jax_enable_x64", True)
    import test_bad_input as table

    answers.put(("ready", len(table.CASES)))
    while True:
        i = requests.get()
        if i is None:
            return
        case = table.CASES[i]
        try:
            out = case.call()
            jax.block_until_ready(out) if out is not None else None
            leaves = jax.tree_util.tree_leaves(out)
            summary = f"returned {type(out).__name__}"
            try:
                import numpy as np

                bad = any(not np.all(np.isfinite(np.asarray(x, float))) for x in leaves)
                summary += " with non-finite values" if bad else ""
            except Exception:  # noqa: BLE001 - a summary only
                pass
            answers.put((i, "silent", f"{case.id}: {summary}"))
        except ValueError as e:
            named = table.names(str(e), case.arg)
            answers.put((i, "clear" if named else "unclear", f"{case.id}: ValueError: {e}"[:300]))
        except Exception as e:  # noqa: BLE001 - the audit classifies every failure
            answers.put((i, "unclear", f"{case.id}: {type(e).__name__}: {e}"[:300]))


def _start(ctx):
    requests, answers = ctx.Queue(), ctx.Queue()
    proc = ctx.Process(target=_worker, args=(requests, answers), daemon=True)
    proc.start()
    tag, n = answers.get(timeout=300)
    assert tag == "ready"
    return proc, requests, answers, n


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    ctx = mp.get_context("spawn")
    proc, requests, answers, n = _start(ctx)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    results = []
    for i in range(n):
        requests.put(i)
        try:
            _, cls, detail = answers.get(timeout=args.timeout)
        except Exception:  # queue.Empty: the call hangs
            cls, detail = "hang", f"no answer in {args.timeout:.0f} s"
            proc.kill()
            proc.join()
            proc, requests, answers, _ = _start(ctx)
        results.append({"index": i, "class": cls, "detail": detail})
        print(f"[{cls:8s}] {i:3d} {detail}", flush=True)
    requests.put(None)
    proc.join(timeout=10)
    counts = {c: sum(r["class"] == c for r in results) for c in CLASSES}
    print("counts:", counts, "of", n)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"counts": counts, "results": results}, f, indent=1)
    return 0 if counts["clear"] == n else 1


if __name__ == "__main__":
    raise SystemExit(main())
