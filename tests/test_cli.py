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
