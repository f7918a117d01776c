"""The sweep store never returns stale results: fingerprints, damaged chunks, machine-independent
chunks, resume with other chunk sizes and device counts, and the lock."""

import json
import os
import socket
import subprocess
import sys
import threading
import types

import jax
import jax.random as jr
import numpy as np
import pytest

from linsolve import sweep
from linsolve.sweep import _run

GRID = sweep.Grid(a=[1.0, 2.0, 3.0], b=sweep.logspace(0.1, 1.0, 5), c=[0, 1])  # 30 points


def _module(body="a * b + c", extra=""):
    """A user module with a point function calling a helper whose body is `body`."""
    module = types.ModuleType("user_sweep")
    exec(
        "import jax.random as jr\n"
        f"def helper(a, b, c):\n    return {body}\n"
        "def point(a, b, c, key):\n"
        f"    return {{'value': helper(a, b, c), 'noise': jr.normal(key, (2,)){extra}}}\n",
        module.__dict__,
    )
    return module.point


POINT = _module()


@pytest.fixture
def counted(monkeypatch):
    """Records the number of points each compiled call evaluates."""
    sizes = []
    real = _run._evaluate_chunk

    def counting(fn, points, index, key, spec):
        sizes.append(len(index))
        return real(fn, points, index, key, spec)

    monkeypatch.setattr(_run, "_evaluate_chunk", counting)
    return sizes


def _interrupt_after(monkeypatch, n_calls):
    """Make the sweep's (n_calls+1)-th compiled call raise KeyboardInterrupt."""
    real, done = _run._evaluate_chunk, []

    def failing(*args):
        if len(done) == n_calls:
            raise KeyboardInterrupt
        done.append(1)
        return real(*args)

    monkeypatch.setattr(_run, "_evaluate_chunk", failing)


def _assert_same(got, ref):
    for name in ref.keys():
        np.testing.assert_array_equal(got[name], ref[name])


def test_changed_helper_is_never_resumed_and_overwrite_recomputes(tmp_path):
    """Defect: a rerun after editing the point function silently returned the old chunks."""
    out = str(tmp_path)
    sweep.run(POINT, GRID, out=out, progress=False)
    changed = _module(body="a * b - c")
    with pytest.raises(sweep.StoreError, match=r"point function `point` differs.*overwrite=True"):
        sweep.run(changed, GRID, out=out, progress=False)
    fresh = sweep.run(changed, GRID, progress=False)
    got = sweep.run(changed, GRID, out=out, overwrite=True, progress=False)
    _assert_same(got, fresh)
    _assert_same(sweep.SweepResult.load(out), fresh)
    np.testing.assert_allclose(got["value"][1, 0, 1], 2.0 * 0.1 - 1)


def test_new_output_is_never_dropped(tmp_path):
    sweep.run(POINT, GRID, out=str(tmp_path), progress=False)
    extra = _module(extra=", 'extra': a + 1")
    with pytest.raises(sweep.StoreError, match=r"its outputs differ \(new \['extra'\]\)"):
        sweep.run(extra, GRID, out=str(tmp_path), progress=False)


@pytest.mark.parametrize(
    "change,field",
    [
        (dict(grid=sweep.Grid(a=[1.0, 2.0, 4.0], b=sweep.logspace(0.1, 1.0, 5), c=[0, 1])), "grid"),
        (dict(key=jr.PRNGKey(7)), "'key'"),
        (dict(config={"seed": 1}), "'config'"),
    ],
)
def test_another_grid_key_or_config_is_refused(tmp_path, change, field):
    sweep.run(POINT, GRID, out=str(tmp_path), progress=False, config={"seed": 0})
    kwargs = dict(grid=GRID, config={"seed": 0}) | change
    with pytest.raises(sweep.StoreError, match=f"holds a different sweep: its {field}"):
        sweep.run(POINT, out=str(tmp_path), progress=False, **kwargs)


def test_another_dtype_is_refused(tmp_path):
    sweep.run(POINT, GRID, out=str(tmp_path), progress=False)
    with jax.enable_x64(False), pytest.raises(sweep.StoreError, match=r"its 'dtype' differs"):
        sweep.run(POINT, GRID, out=str(tmp_path), progress=False)


def test_chunks_without_meta_are_refused(tmp_path):
    sweep.run(POINT, GRID, out=str(tmp_path), progress=False)
    os.remove(tmp_path / "meta.json")
    with pytest.raises(sweep.StoreError, match=r"no meta.json"):
        sweep.run(POINT, GRID, out=str(tmp_path), progress=False)
    sweep.run(POINT, GRID, out=str(tmp_path), progress=False, overwrite=True)
    with pytest.raises(sweep.StoreError, match=r"`resume` is False. Pass resume=True"):
        sweep.run(POINT, GRID, out=str(tmp_path), progress=False, resume=False)


def test_a_store_without_results_is_replaced_and_an_old_store_refused(tmp_path, monkeypatch):
    def broken(*args):
        raise RuntimeError("bug in the point function")

    monkeypatch.setattr(_run, "_evaluate_chunk", broken)
    with pytest.raises(RuntimeError):
        sweep.run(POINT, GRID, out=str(tmp_path), progress=False)
    monkeypatch.undo()
    fixed = _module(body="a * b + 2 * c")  # nothing was stored, so nothing stale can come back
    np.testing.assert_allclose(
        sweep.run(fixed, GRID, out=str(tmp_path), progress=False)["value"][0, 0, 1], 2.1
    )
    meta = json.loads((tmp_path / "meta.json").read_text())
    del meta["function"]  # as written by linsolve before fingerprints
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(sweep.StoreError, match=r"older linsolve.*overwrite=True"):
        sweep.run(fixed, GRID, out=str(tmp_path), progress=False)


def test_damaged_chunks_are_reported_deleted_and_recomputed(tmp_path, counted):
    """Defect: a truncated chunk made every resume die with zipfile.BadZipFile."""
    ref = sweep.run(POINT, GRID, chunk_size=8, out=str(tmp_path), progress=False)
    files = sorted((tmp_path / "chunks").glob("points_*.npz"))
    names = ["points_0000000000-0000000008.npz", "points_0000000008-0000000016.npz"]
    assert [f.name for f in files][:2] == names
    files[1].write_bytes(files[1].read_bytes()[:100])  # truncated
    np.savez(files[2], value=np.zeros(8))  # wrong outputs
    counted.clear()
    with pytest.warns(UserWarning) as record:
        got = sweep.run(POINT, GRID, chunk_size=8, out=str(tmp_path), progress=False)
    messages = " ".join(str(w.message) for w in record)
    assert files[1].name in messages and "BadZipFile" in messages
    assert files[2].name in messages and "outputs ['value']" in messages
    assert sum(counted) == 16  # only the two damaged chunks
    _assert_same(got, ref)


def test_default_chunks_depend_on_the_grid_alone(tmp_path):
    """Defect: the chunk size was rounded to the device count, so stores were machine-bound;
    and a grid run as one chunk showed no progress and lost everything on a kill."""
    assert sweep.default_chunk_size(30) == 2 and sweep.default_chunk_size(35) == 2
    assert sweep.default_chunk_size(3) == 1 and sweep.default_chunk_size(10**6) == 256
    for size in [10, 11, 21, 35, 41, 161, 181, 400, 4000, 4097, 12800]:
        assert 10 <= -(-size // sweep.default_chunk_size(size)) <= 50, size
    names = []
    for devices in (1, 2):
        out = tmp_path / f"d{devices}"
        sweep.run(POINT, GRID, chunk_size=3, devices=devices, out=str(out), progress=False)
        names.append(sorted(f.name for f in (out / "chunks").iterdir()))
    assert names[0] == names[1] and len(names[0]) == 10  # 3-point chunks, padded only inside calls


def test_resume_on_another_machine_with_another_chunk_size(tmp_path, monkeypatch, compilations):
    """Killed half-way on 2 devices with 4-point chunks, resumed on 1 device with 7-point chunks:
    stored points are reused, only the missing ones computed, and the result equals a fresh run."""
    out = str(tmp_path)
    _interrupt_after(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        sweep.run(POINT, GRID, chunk_size=4, devices=2, out=out, progress=False)
    assert len(list((tmp_path / "chunks").glob("points_*.npz"))) == 3
    assert not (tmp_path / "lock").exists()
    with pytest.raises(ValueError, match="has not finished; rerun it"):
        sweep.SweepResult.load(out)
    monkeypatch.undo()
    sizes = []
    real = _run._evaluate_chunk
    monkeypatch.setattr(_run, "_evaluate_chunk", lambda *a: sizes.append(len(a[2])) or real(*a))
    with compilations() as events:
        got = sweep.run(POINT, GRID, chunk_size=7, devices=1, out=out, progress=False)
    assert len(events) == 1  # ragged calls are padded to one shape
    assert sizes == [2, 7, 7, 2] and sum(sizes) == 30 - 12  # 12..13 then 14..20, 21..27, 28..29
    ref = sweep.run(POINT, GRID, chunk_size=30, progress=False)
    _assert_same(got, ref)
    sizes.clear()
    _assert_same(sweep.run(POINT, GRID, chunk_size=5, devices=2, out=out, progress=False), ref)
    assert sizes == []


def test_a_second_writer_is_stopped_by_the_lock(tmp_path, monkeypatch):
    """Defect: two sweeps into one folder ran together."""
    started, release, errors = threading.Event(), threading.Event(), []
    real = _run._evaluate_chunk

    def slow(*args):
        started.set()
        release.wait(30)
        return real(*args)

    monkeypatch.setattr(_run, "_evaluate_chunk", slow)
    first = threading.Thread(
        target=lambda: sweep.run(POINT, GRID, chunk_size=15, out=str(tmp_path), progress=False)
    )
    first.start()
    try:
        assert started.wait(30)
        lock = json.loads((tmp_path / "lock").read_text())
        assert lock["pid"] == os.getpid() and lock["host"] == socket.gethostname()
        locked = rf"locked by another running sweep \(process {os.getpid()}"
        with pytest.raises(sweep.StoreError, match=locked):
            sweep.run(POINT, GRID, out=str(tmp_path), progress=False)
    except Exception as error:  # noqa: BLE001 - let the first sweep finish before failing
        errors.append(error)
    finally:
        release.set()
        first.join()
    assert not errors, errors
    assert not (tmp_path / "lock").exists()


def test_stale_and_foreign_locks(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    dead_pid = int(finished.stdout)
    lock = tmp_path / "lock"
    lock.write_text(json.dumps({"pid": dead_pid, "host": socket.gethostname(), "time": "then"}))
    with pytest.warns(UserWarning, match=rf"stale lock .*process {dead_pid} that wrote it no longer runs"):
        sweep.run(POINT, GRID, out=str(tmp_path), progress=False)
    assert not lock.exists()
    lock.write_text(json.dumps({"pid": 1, "host": "elsewhere", "time": "now"}))
    with pytest.raises(sweep.StoreError, match=r"host 'elsewhere'.*delete"):
        sweep.run(POINT, GRID, out=str(tmp_path), progress=False)
    assert lock.exists()  # not ours to remove


def test_lock_is_released_after_an_error(tmp_path, monkeypatch):
    def broken(*args):
        raise RuntimeError("device lost")

    monkeypatch.setattr(_run, "_evaluate_chunk", broken)
    with pytest.raises(RuntimeError, match="device lost"):
        sweep.run(POINT, GRID, out=str(tmp_path), progress=False)
    assert not (tmp_path / "lock").exists()


def test_bad_point_function_fails_before_any_work(tmp_path):
    with pytest.raises(ValueError, match=r"`fn` must return a dict of arrays; got tuple"):
        sweep.run(lambda a, b, c: (a, b), GRID, out=str(tmp_path / "x"), progress=False)
    assert not (tmp_path / "x").exists()
    with pytest.raises(ValueError, match=r"`chunk_size` must be a positive integer; got 0"):
        sweep.run(POINT, GRID, chunk_size=0, progress=False)


def _make_logged(path):
    """A closure (pickled by value, so a new object in every task) that logs each trace."""

    def point(a, b, c, key):
        with open(path, "a") as f:
            f.write("trace\n")
        return {"value": a * b + c, "noise": jr.normal(key, (2,))}

    return point


def test_dask_workers_compile_once(tmp_path):
    """Defect: Dask workers recompiled the chunk function for every chunk."""
    distributed = pytest.importorskip("dask.distributed")
    log = tmp_path / "traces.txt"
    fn = _make_logged(str(log))
    ref = sweep.run(POINT, GRID, progress=False)
    log.write_text("")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        got = sweep.run(fn, GRID, chunk_size=3, executor=client.get_executor(), progress=False)
    traces = log.read_text().count("trace")
    assert 2 <= traces <= 3  # one shape trace here, then at most one trace per worker (10 chunks)
    np.testing.assert_array_equal(got["value"], ref["value"])
    np.testing.assert_array_equal(got["noise"], ref["noise"])
