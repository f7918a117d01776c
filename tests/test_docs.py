"""The documentation site: it builds with ``mkdocs build --strict``, its API reference lists every
public name of every documented subpackage, and its relative links point at existing pages."""

import importlib
import importlib.util
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import linsolve

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

# Subpackages and modules with an API reference page; each must list all of its public names.
DOCUMENTED = ("exact", "simulate", "sweep", "analysis", "tasks", "init", "models", "mlp", "verify", "plot")
# Public submodules of `linsolve` left out of the reference on purpose (tools, not library API).
NOT_DOCUMENTED = ("bench", "cli", "gallery")

_DIRECTIVE = re.compile(r"^:::\s+(\S+)\s*$", re.MULTILINE)
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def _pages() -> list[Path]:
    pages = sorted(DOCS.rglob("*.md"))
    assert pages, f"no Markdown pages under {DOCS}"
    return pages


def public_names(module) -> list[str]:
    """`module.__all__`, or else the attributes of `module` without a leading underscore that are
    neither submodules nor ``from __future__`` features (the names its ``__init__`` re-exports)."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return sorted(
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not inspect.ismodule(value)
        and type(value).__module__ != "__future__"
    )


def documented_paths() -> set[str]:
    """Every ``::: dotted.path`` directive in the docs pages."""
    return {path for page in _pages() for path in _DIRECTIVE.findall(page.read_text())}


def test_mkdocs_build_strict(tmp_path):
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")
    # No `-q`: mkdocs counts warnings for --strict through its log handler, and `-q` raises the log
    # level to ERROR, so `--strict -q` passes a build with warnings (broken links included).
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    assert "WARNING" not in proc.stderr, proc.stderr
    for page in ("index.html", *(f"api/{p.stem}/index.html" for p in (DOCS / "api").glob("*.md"))):
        assert (tmp_path / "site" / page).is_file(), page


def test_every_submodule_is_documented_or_excluded():
    submodules = set(linsolve._SUBMODULES)
    assert submodules == set(DOCUMENTED) | set(NOT_DOCUMENTED), (
        f"new public submodules {sorted(submodules - set(DOCUMENTED) - set(NOT_DOCUMENTED))}: add an "
        "API page (and them to DOCUMENTED) or list them in NOT_DOCUMENTED"
    )


@pytest.mark.parametrize("sub", DOCUMENTED)
def test_every_public_name_has_a_reference_entry(sub):
    module = importlib.import_module(f"linsolve.{sub}")
    names = public_names(module)
    assert names, f"linsolve.{sub} has no public names"
    paths = documented_paths()
    missing = []
    for name in names:
        defined_in = getattr(getattr(module, name), "__module__", None)
        if f"linsolve.{sub}.{name}" not in paths and f"{defined_in}.{name}" not in paths:
            missing.append(name)
    assert not missing, f"public names of linsolve.{sub} without a `::: linsolve.{sub}.NAME` entry: {missing}"


def test_every_reference_entry_exists():
    """Each ``::: path`` names an importable object (mkdocstrings would fail on it too, but here the
    message names the entry)."""
    for path in sorted(documented_paths()):
        module_name, _, attr = path.rpartition(".")
        module = importlib.import_module(module_name)
        assert hasattr(module, attr), f"docs entry `::: {path}`: {module_name} has no attribute {attr}"


def test_no_name_is_documented_twice():
    directives = [p for page in _pages() for p in _DIRECTIVE.findall(page.read_text())]
    duplicates = sorted({p for p in directives if directives.count(p) > 1})
    assert not duplicates, f"documented more than once: {duplicates}"


def test_relative_links_point_to_existing_pages():
    broken = []
    for page in _pages():
        text = _INLINE_CODE.sub("", _FENCE.sub("", page.read_text()))
        for target in _LINK.findall(text):
            if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith("#"):
                continue  # external (http:, mailto:, ...) or an anchor on the same page
            file_part = target.split("#", 1)[0]
            if file_part.startswith("/") or not (page.parent / file_part).resolve().is_file():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, f"relative links to missing pages: {broken}"


def test_link_checker_sees_links():
    """The link pattern finds the index page's links into the API reference (the check above is
    not vacuous)."""
    targets = _LINK.findall((DOCS / "index.md").read_text())
    assert "api/exact.md" in targets and "api/tasks.md" in targets
