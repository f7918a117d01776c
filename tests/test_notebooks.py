"""The notebooks: every percent script of ``experiments/`` (the ones with ``# %%`` cells) and of
``notebooks/`` is a notebook with Markdown cells, survives the jupytext round trip py -> ipynb -> py
unchanged, and executes without error in a Jupyter kernel (nbclient), in its smoke setting
(``LINSOLVE_SMOKE=1``) and with its figures redirected to a temporary folder
(``LINSOLVE_FIGURES``), producing output.

The default suite executes the teaching demos, the explorer and two of the main studies; the other
studies (`SLOW`, measured times beside it) execute with ``-m slow``, as does one documentation build
that executes a notebook and checks that its page shows the figure.
"""

import os
import pathlib
import re
import subprocess
import sys
import time

import pytest

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")

ROOT = pathlib.Path(__file__).resolve().parent.parent
_CELL = re.compile(r"^# %%", re.MULTILINE)


def notebook_sources() -> list[pathlib.Path]:
    """Every ``experiments/*.py`` with ``# %%`` cells, and every ``notebooks/*.py``."""
    scripts = sorted((ROOT / "experiments").glob("*.py"))
    studies = [p for p in scripts if _CELL.search(p.read_text())]
    return studies + sorted((ROOT / "notebooks").glob("*.py"))


SOURCES = notebook_sources()
IDS = [f"{p.parent.name}/{p.stem}" for p in SOURCES]
# Executed only with `-m slow`, to keep the default suite's share near 60 s of CPU. Measured smoke
# executions (kernel start and imports included; shared 2-core CPU under load ~3), in seconds:
# teach_stage_learning 7.1, teach_layer_rates 7.7, teach_lazy_ntk 8.6, catapult_phases 8.9,
# one_hidden_layer_mechanisms 9.2, explorer 13.0 (default suite: 54.5 s); saxe_modes 9.2,
# lazy_rich_lambda 9.7, sgd_power_law 10.2, diagonal_implicit_bias 10.5 (slow).
SLOW = {
    "experiments/saxe_modes",
    "experiments/lazy_rich_lambda",
    "experiments/sgd_power_law",
    "experiments/diagonal_implicit_bias",
}


def _marked(path: pathlib.Path):
    name = f"{path.parent.name}/{path.stem}"
    return pytest.param(path, id=name, marks=[pytest.mark.slow] if name in SLOW else [])


def test_there_are_notebooks():
    names = {p.stem for p in SOURCES}
    assert {"teach_stage_learning", "saxe_modes", "sgd_power_law"} <= names, sorted(names)


@pytest.mark.parametrize("path", SOURCES, ids=IDS)
def test_notebook_has_markdown_and_code_cells(path):
    notebook = jupytext.read(path)
    kinds = [cell.cell_type for cell in notebook.cells]
    assert kinds.count("markdown") >= 2, f"{path.name}: {kinds.count('markdown')} markdown cells"
    assert kinds.count("code") >= 2, f"{path.name}: {kinds.count('code')} code cells"
    title = notebook.cells[0]
    assert title.cell_type == "markdown" and title.source.startswith("# "), (
        f"{path.name}: the first cell must be Markdown with a `# Title` (the docs page title)"
    )


@pytest.mark.parametrize("path", SOURCES, ids=IDS)
def test_jupytext_round_trip_is_exact(path):
    """py -> ipynb -> py gives the file back byte for byte (what Jupyter writes on save)."""
    text = path.read_text()
    as_ipynb = jupytext.writes(jupytext.reads(text, fmt="py:percent"), fmt="ipynb")
    back = jupytext.writes(jupytext.reads(as_ipynb, fmt="ipynb"), fmt="py:percent")
    assert back == text


def execute(path: pathlib.Path, figures: pathlib.Path, *, smoke: bool = True, timeout: int = 300):
    """Run the notebook of `path` in a fresh python3 kernel (the venv's ipykernel), with
    ``LINSOLVE_SMOKE`` and ``LINSOLVE_FIGURES`` set in the kernel's environment; returns it."""
    notebook = jupytext.read(path)
    env = {**os.environ, "LINSOLVE_SMOKE": "1" if smoke else "0", "LINSOLVE_FIGURES": str(figures)}
    client = nbclient.NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=timeout,
        resources={"metadata": {"path": str(ROOT)}},
    )
    client.execute(env=env)
    return notebook


@pytest.mark.parametrize("path", [_marked(p) for p in SOURCES])
def test_notebook_executes_in_smoke_mode(path, tmp_path):
    start = time.perf_counter()
    notebook = execute(path, tmp_path)  # raises CellExecutionError on the first failing cell
    seconds = time.perf_counter() - start
    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]
    assert outputs, f"{path.name}: no cell produced output"
    errors = [out for out in outputs if out.output_type == "error"]
    assert not errors, errors
    if path.parent.name == "experiments":
        images = [out for out in outputs if "image/png" in out.get("data", {})]
        written = sorted(p.name for p in tmp_path.glob("*.png"))
        assert written, f"{path.name}: no figure written to LINSOLVE_FIGURES"
        assert len(images) == len(written), f"{path.name}: shows {len(images)} of {written}"
    print(f"{path.name}: smoke notebook executed in {seconds:.1f} s")


@pytest.mark.slow
def test_docs_build_executes_a_notebook_and_shows_its_figure(tmp_path):
    """``LINSOLVE_DOCS_EXECUTE=NAME mkdocs build --strict`` (docs/_hooks.py) executes that notebook
    (smoke setting, figures to a temporary folder) and its page shows the figure as an image
    output; a notebook left unexecuted shows none. Run from `tmp_path`, so mkdocs-jupyter's render
    cache (relative to the working directory) stays out of the repository."""
    pytest.importorskip("mkdocs_jupyter")
    figures, site = tmp_path / "figures", tmp_path / "site"
    committed = {p: p.stat().st_mtime_ns for p in (ROOT / "figures").glob("*.png")}
    env = {
        **os.environ,
        "NO_MKDOCS_2_WARNING": "1",
        "LINSOLVE_DOCS_EXECUTE": "teach_stage_learning",
        "LINSOLVE_SMOKE": "1",
        "LINSOLVE_FIGURES": str(figures),
    }
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml")]
    command += ["-d", str(site)]
    options = {"cwd": tmp_path, "env": env, "capture_output": True, "text": True, "timeout": 900}
    proc = subprocess.run(command, **options)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    assert "WARNING -" not in proc.stderr, proc.stderr  # mkdocs' own warnings (not the kernel's)
    image = re.compile(r'<img [^>]*src="data:image/png;base64,')  # an image output, inlined
    executed = (site / "notebooks/teach_stage_learning/index.html").read_text()
    assert len(image.findall(executed)) == 1, "the executed page shows not exactly one figure"
    assert re.search(r"gap between the last two modes / its jump = \d", executed)  # printed output
    not_executed = (site / "notebooks/saxe_modes/index.html").read_text()
    assert not image.search(not_executed)
    assert (figures / "teach_stage_learning.png").is_file()
    assert committed == {p: p.stat().st_mtime_ns for p in (ROOT / "figures").glob("*.png")}


def _study(tmp_path):
    """A stand-in study module: ``main`` records its `smoke` and the ``FIGURES`` it writes to."""
    namespace = {"FIGURES": tmp_path / "committed", "calls": []}
    code = "def main(smoke=False):\n    calls.append((smoke, FIGURES))\n    return 'done'\n"
    exec(compile(code, "study", "exec"), namespace)
    return namespace


@pytest.mark.parametrize(
    "argv, smoke_env, expected",
    [([], None, False), (["--smoke"], None, True), ([], "1", True), ([], "0", False), ([], "no", False)],
)
def test_script_main_reads_flag_and_environment(monkeypatch, tmp_path, argv, smoke_env, expected):
    from linsolve.gallery import script_main

    study = _study(tmp_path)
    monkeypatch.setattr(sys, "argv", ["study.py", *argv, "-f", "kernel.json"])  # unknown: ignored
    monkeypatch.delenv("LINSOLVE_FIGURES", raising=False)
    if smoke_env is None:
        monkeypatch.delenv("LINSOLVE_SMOKE", raising=False)
    else:
        monkeypatch.setenv("LINSOLVE_SMOKE", smoke_env)
    assert script_main(study["main"], "A study.") == "done"
    # A small run never writes over the committed figures: it goes to figures_smoke/ beside them.
    folder = tmp_path / ("figures_smoke" if expected else "committed")
    assert study["calls"] == [(expected, folder)]


def test_script_main_redirects_figures(monkeypatch, tmp_path):
    from linsolve.gallery import figures_dir, script_main

    study = _study(tmp_path)
    monkeypatch.setattr(sys, "argv", ["study.py"])
    monkeypatch.setenv("LINSOLVE_FIGURES", str(tmp_path / "elsewhere"))
    script_main(study["main"], "A study.")
    assert study["calls"] == [(False, tmp_path / "elsewhere")]
    assert figures_dir() == tmp_path / "elsewhere"
    monkeypatch.delenv("LINSOLVE_FIGURES")
    assert figures_dir() == ROOT / "figures"
