"""MkDocs hook: the notebooks of ``experiments/`` and ``notebooks/`` as pages under ``notebooks/``.

The notebooks' one source is their jupytext percent scripts (``experiments/*.py`` with ``# %%``
cells, ``notebooks/*.py``), outside ``docs/``. This hook adds each of them to the site's files as
``notebooks/NAME.py`` (and to the nav's ``Notebooks`` section when it is not listed there); the
mkdocs-jupyter plugin (``include: [notebooks/*.py]`` in ``mkdocs.yml``) renders them as pages.

Execution is off by default (the strict build of the test suite stays fast and shows the code and
text only). ``LINSOLVE_DOCS_EXECUTE`` turns it on:

* ``1`` (or ``true``, ``yes``, ``all``): execute every notebook with its full settings, as the
  published site is built (``LINSOLVE_DOCS_EXECUTE=1 mkdocs build --strict``);
* a comma-separated list of names (``teach_stage_learning,saxe_modes``): execute only those.

While executing, the kernels write their figures to a temporary folder (``LINSOLVE_FIGURES``, unless
it is set already), never over the committed ``figures/``; with ``LINSOLVE_SMOKE=1`` they run their
small settings, and the render cache is then bypassed (its key does not see the environment).
This file sits in ``docs/`` but is not part of the site (it removes itself from the files).
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import tempfile

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

ROOT = pathlib.Path(__file__).resolve().parent.parent
SITE_FOLDER = "notebooks"
EXECUTE_ENV = "LINSOLVE_DOCS_EXECUTE"
_CELL = re.compile(r"^# %%", re.MULTILINE)
_ALL = ("1", "true", "yes", "all")
_NONE = ("", "0", "false", "no")
_stage: tempfile.TemporaryDirectory | None = None  # this build's copies of the sources


def notebook_sources() -> list[pathlib.Path]:
    """The percent scripts that are notebooks: ``experiments/*.py`` with ``# %%`` cells and every
    ``notebooks/*.py``."""
    scripts = sorted((ROOT / "experiments").glob("*.py"))
    studies = [p for p in scripts if _CELL.search(p.read_text())]
    return studies + sorted((ROOT / "notebooks").glob("*.py"))


def _executed(value: str, names: list[str]) -> set[str]:
    value = value.strip().lower()
    if value in _NONE:
        return set()
    if value in _ALL:
        return set(names)
    wanted = {v.strip() for v in value.split(",") if v.strip()}
    unknown = sorted(wanted - set(names))
    if unknown:
        raise ValueError(f"{EXECUTE_ENV} must be 1, 0 or names from {names}; got {unknown}.")
    return wanted


def _nav_paths(items) -> set[str]:
    paths = set()
    for item in items:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        paths |= _nav_paths(value) if isinstance(value, list) else {value}
    return paths


def _list_in_nav(config, sources: list[pathlib.Path]) -> None:
    """Append the notebooks that the ``Notebooks`` section of ``mkdocs.yml``'s nav does not list
    (a new ``notebooks/NAME.py``, say) to it; their page title is their first heading."""
    sections = [item for item in config.nav or [] if isinstance(item, dict) and "Notebooks" in item]
    if not sections:
        return
    section = sections[0]["Notebooks"]
    listed = _nav_paths(section)
    pages = [f"{SITE_FOLDER}/{p.name}" for p in sources]
    section.extend(page for page in pages if page not in listed)


def on_config(config):
    """List every notebook in the nav; switch mkdocs-jupyter's execution on for the notebooks
    ``$LINSOLVE_DOCS_EXECUTE`` names; let ``mkdocs serve`` watch the notebook sources."""
    for folder in (ROOT / "experiments", ROOT / "notebooks"):
        if folder.is_dir() and str(folder) not in config.watch:
            config.watch.append(str(folder))
    sources = notebook_sources()
    _list_in_nav(config, sources)
    executed = _executed(os.environ.get(EXECUTE_ENV, ""), [p.stem for p in sources])
    plugin = config.plugins.get("mkdocs-jupyter")
    if plugin is None or not executed:
        return config
    plugin.config["execute"] = True
    skipped = [p for p in sources if p.stem not in executed]
    plugin.config["execute_ignore"] = [f"{SITE_FOLDER}/{p.name}" for p in skipped]
    if not os.environ.get("LINSOLVE_FIGURES", "").strip():  # the kernels inherit the environment
        os.environ["LINSOLVE_FIGURES"] = tempfile.mkdtemp(prefix="linsolve-docs-figures-")
    if os.environ.get("LINSOLVE_SMOKE", "").strip().lower() not in _NONE:
        plugin.config["cache"] = False
    return config


@event_priority(100)  # before mkdocs-jupyter's on_files, which turns these files into pages
def on_files(files: Files, config) -> Files:
    """Add every notebook source as ``notebooks/NAME.py``; drop this hook file from the site.

    The sources are copied into a staging folder (``STAGE/notebooks/NAME.py``) and added as
    ordinary files of that folder: mkdocs-jupyter reads a page's file from ``src_dir/src_uri`` and
    does not handle MkDocs' virtual (``File.generated``) files.
    """
    global _stage
    _stage = tempfile.TemporaryDirectory(prefix="linsolve-docs-notebooks-")
    folder = pathlib.Path(_stage.name) / SITE_FOLDER
    folder.mkdir()
    for path in notebook_sources():
        shutil.copyfile(path, folder / path.name)
        files.append(
            File(
                f"{SITE_FOLDER}/{path.name}",
                src_dir=_stage.name,
                dest_dir=config.site_dir,
                use_directory_urls=config.use_directory_urls,
            )
        )
    hook = files.get_file_from_path("_hooks.py")
    if hook is not None:
        files.remove(hook)
    return files


def on_post_build(config) -> None:
    """Remove the staging folder."""
    if _stage is not None:
        _stage.cleanup()
