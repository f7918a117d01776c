"""The gallery: every referenced figure exists, every study is listed, every study runs (smoke)."""

import itertools
import pathlib
import re

import pytest

from linsolve import cli
from linsolve.gallery import list_experiments, run_experiment

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _expand(pattern: str) -> list[str]:
    """``a_{x,y}.png`` -> ``[a_x.png, a_y.png]``."""
    parts = re.split(r"\{([^}]*)\}", pattern)
    choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
    return ["".join(c) for c in itertools.product(*choices)]


def _referenced(text: str) -> set[str]:
    names = set()
    for match in re.findall(r"`?(?:figures/)?([\w{},]+\.png)`?", text):
        names.update(_expand(match))
    return names


@pytest.mark.parametrize("doc", ["README.md", "figures/README.md"])
def test_every_referenced_figure_exists(doc):
    names = _referenced((ROOT / doc).read_text())
    assert names, f"{doc} references no figure"
    missing = sorted(n for n in names if not (ROOT / "figures" / n).is_file())
    assert not missing, f"{doc} references missing figures: {missing}"


def test_every_study_is_listed_in_both_readmes():
    readme, gallery = (ROOT / "README.md").read_text(), (ROOT / "figures/README.md").read_text()
    for name in list_experiments():
        assert f"`{name}`" in readme or name.startswith("teach_"), f"{name} missing from README.md"
        assert name in gallery, f"{name} missing from figures/README.md"


def test_reproduce_command_lists_and_rejects(capsys):
    assert cli.main(["reproduce", "--list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in list_experiments())
    assert cli.main(["reproduce", "no_such_study"]) == 2
    assert "no experiment 'no_such_study'" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(list_experiments()))
def test_experiment_smoke_run_writes_its_figures(name, tmp_path):
    run_experiment(name, smoke=True, out=str(tmp_path))
    assert list(tmp_path.glob("*.png")), f"{name} wrote no figure"
