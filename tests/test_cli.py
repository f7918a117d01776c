"""The command line: demo (main job) and verify (theorem-check panel)."""

import json

import pytest

from linsolve import cli
from linsolve.verify import FAMILIES, format_table, verify


def test_demo_smoke_prints_table_and_writes_figure(tmp_path, capsys):
    assert cli.main(["demo", "--smoke", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "stage-like learning (larger singular values first): yes" in out
    for name in ("stage_learning", "ntk_change_simulation", "ntk_change_theory"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000
    # Phase diagram: exact and gradient flow agree at every grid point.
    error = float(out.split("max relative error ")[1].split()[0])
    assert error < 1e-6
    # Stage-like learning: the exact half-learning times agree with the gradient-flow ones.
    table = out.split("max|u_flow - u_exact|")[1].split("stage-like")[0]
    rows = [line.split() for line in table.splitlines() if line.strip()]
    assert len(rows) == 4
    for row in rows:
        assert abs(float(row[2]) - float(row[3])) < 1e-3


def test_verify_json_and_exit_code(capsys):
    assert cli.main(["verify", "--json", "--family", "mode", "--draws", "3"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] and report["checks"][0]["family"] == "mode"


def test_verify_rejects_unknown_family():
    with pytest.raises(ValueError, match=r"`families` must be drawn from"):
        verify(families=["nope"])


def test_verify_table_marks_failures():
    from linsolve.verify import Check

    table = format_table([Check("mode", 3, 1e-3, 0.0, 0.0, 1e-8)])
    assert "FAIL" in table and "0 passed, 1 failed" in table
    assert "mode" in FAMILIES


def _one_line_error(capsys, command):
    """The stderr of a failed command: exactly one line `linsolve CMD: error: ...`, no traceback."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"linsolve {command}: error: ") and "Traceback" not in err
    return lines[0]


@pytest.fixture
def a_file(tmp_path):
    path = tmp_path / "a_file.txt"
    path.write_text("not a folder")
    return str(path)


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["verify", "--draws", "0"], "--draws"),
        (["verify", "--draws", "-3"], "--draws"),
        (["verify", "--draws", "two"], "--draws"),
        (["verify", "--seed", "-1"], "--seed"),
        (["verify", "--family", "foo"], "'one_hidden_layer'"),  # lists the families
        (["sweep", "lambda", "--out", "{file}"], "`--out`"),
        (["sweep", "lambda", "--out", "{missing}/run"], "does not exist"),
        (["sweep", "lambda", "--out", "{tmp}/run", "--chunk-size", "0"], "--chunk-size"),
        (["sweep", "nope", "--out", "{tmp}/run"], "no config file 'nope'"),
        (["demo", "--out", "{file}"], "`--out`"),
        (["demo", "--out", "{missing}/figures"], "does not exist"),
        (["bench", "--precision", "fastest"], "--precision"),
        (["bench", "--out", "{tmp}"], "`--out`"),
        (["reproduce", "--out", "{file}", "saxe_modes"], "`--out`"),
        (["plot", "{corrupt}"], "plot"),
    ],
)
def test_user_mistakes_exit_2_with_one_line(argv, needle, tmp_path, a_file, capsys):
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "result.npz").write_bytes(b"PK\x03\x04 truncated")
    names = {
        "file": a_file,
        "missing": str(tmp_path / "missing"),
        "tmp": str(tmp_path),
        "corrupt": str(corrupt),
    }
    argv = [a.format(**names) for a in argv]
    assert cli.main(argv) == 2
    assert needle in _one_line_error(capsys, argv[0])
    assert not (tmp_path / "missing").exists() and not (tmp_path / "run").exists()  # checked before work


def test_unwritable_out_is_refused_before_any_work(tmp_path, capsys):
    import os
    import sys

    if sys.platform.startswith("linux") and os.path.isdir("/proc"):
        assert cli.main(["sweep", "lambda", "--out", "/proc/linsolve_out"]) == 2  # read-only even for root
        assert "cannot write in '/proc'" in _one_line_error(capsys, "sweep")
    if os.name == "posix" and os.geteuid() != 0:  # permission bits do not stop root
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        try:
            assert cli.main(["demo", "--out", str(locked)]) == 2
            assert "cannot write" in _one_line_error(capsys, "demo")
        finally:
            locked.chmod(0o700)


def test_unreachable_scheduler_fails_fast(tmp_path, capsys, monkeypatch):
    import time

    pytest.importorskip("dask.distributed")
    monkeypatch.setattr(cli, "_SCHEDULER_TIMEOUT_S", 1)
    start = time.perf_counter()
    argv = ["sweep", "lambda", "--out", str(tmp_path / "run"), "--scheduler", "tcp://127.0.0.1:9"]
    assert cli.main(argv) == 2
    assert time.perf_counter() - start < 30
    line = _one_line_error(capsys, "sweep")
    assert "`--scheduler`" in line and "tcp://127.0.0.1:9" in line


def test_version_and_verify_help(capsys):
    import linsolve

    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"linsolve {linsolve.__version__}"
    assert cli.main(["verify", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 20)" in text and "(default: 0)" in text
    for family in FAMILIES:
        assert family in text
