"""The documentation site: it builds with ``mkdocs build --strict``, its API reference lists every
public name of every documented subpackage, and its relative links point at existing pages."""

import ast
import functools
import importlib
import importlib.util
import inspect
import io
import os
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest
import yaml

import linsolve

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

# Subpackages and modules with an API reference page; each must list all of its public names.
DOCUMENTED = (
    "exact", "simulate", "sweep", "analysis", "tasks", "init", "models", "mlp", "verify", "plot",
    "explore",
)
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
    # docs/_roles_hook.py: Sphinx roles of the docstrings render as (linked) code, not as text.
    exact_page = (tmp_path / "site" / "api" / "exact" / "index.html").read_text()
    assert not re.search(r":(func|class|meth|data|attr|mod):<code>", exact_page)
    assert '<a href="./#linsolve.exact.mode"><code>mode</code></a>' in exact_page
    assert re.search(r'href="\.\./simulate/#linsolve\.simulate\.gradient_flow"', exact_page)


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


def _is_notebook_page(path: Path) -> bool:
    """`docs/notebooks/NAME.py`: a page that docs/_hooks.py generates from a notebook source."""
    return path.parent == DOCS / "notebooks" and any(
        source.name == path.name for source in _notebook_sources()
    )


@functools.cache
def _notebook_sources() -> tuple[Path, ...]:
    spec = importlib.util.spec_from_file_location("linsolve_docs_hooks", DOCS / "_hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    return tuple(hooks.notebook_sources())


def test_relative_links_point_to_existing_pages():
    broken = []
    for page in _pages():
        text = _INLINE_CODE.sub("", _FENCE.sub("", page.read_text()))
        for target in _LINK.findall(text):
            if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith("#"):
                continue  # external (http:, mailto:, ...) or an anchor on the same page
            file_part = target.split("#", 1)[0]
            resolved = (page.parent / file_part).resolve()
            if file_part.startswith("/") or not (resolved.is_file() or _is_notebook_page(resolved)):
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, f"relative links to missing pages: {broken}"


def test_link_checker_sees_links():
    """The link pattern finds the index page's links into the API reference (the check above is
    not vacuous)."""
    targets = _LINK.findall((DOCS / "index.md").read_text())
    assert "api/exact.md" in targets and "api/tasks.md" in targets


# ---------------------------------------------------------------------------------------------
# Citation metadata, the papers table, and paths that must exist in the repository.



CFF_REQUIRED = ("cff-version", "message", "title", "type", "authors", "version", "date-released")


def test_citation_cff_parses_with_the_required_keys():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    missing = [key for key in CFF_REQUIRED if key not in cff]
    assert not missing, f"CITATION.cff lacks {missing}"
    assert str(cff["cff-version"]) == "1.2.0" and cff["type"] == "software"
    assert cff["authors"] and all("name" in a or "family-names" in a for a in cff["authors"])
    assert str(cff["version"]) == linsolve.__version__, "CITATION.cff version differs from the package's"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(cff["date-released"]))


def test_every_exact_name_is_in_the_citation_table():
    text = (DOCS / "cite.md").read_text()
    names = public_names(importlib.import_module("linsolve.exact"))
    missing = [name for name in names if f"`{name}`" not in text]
    assert not missing, f"docs/cite.md does not name {missing}"


def test_every_analysis_function_is_in_the_citation_table():
    text = (DOCS / "cite.md").read_text()
    module = importlib.import_module("linsolve.analysis")
    names = [n for n in public_names(module) if inspect.isfunction(getattr(module, n))]
    missing = [name for name in names if f"`{name}`" not in text]
    assert not missing, f"docs/cite.md does not name {missing}"


# A repository path: folders, then a file name with one of these extensions.
_PATH = re.compile(r"(?<![\w/.:-])((?:\.{1,2}/)*(?:[\w-]+/)+[\w.-]+\.(?:md|py|png|toml))(?![\w/])")
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+")
# Folders written by the tools (ignored by git) and placeholders in usage examples.
_NOT_IN_REPOSITORY = ("figures_smoke/", "demo_out/", "runs/", "site/", ".pytest_cache/")
_PLACEHOLDER = re.compile(r"(?:^|/)(?:NAME|SCRIPT|STUDY|CONFIG|FILE|X)\.\w+$")


def _python_texts(path: Path) -> list[str]:
    """The docstrings and comments of a Python file."""
    source = path.read_text()
    texts = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                texts.append(doc)
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            texts.append(token.string)
    return texts


@functools.cache
def _scanned() -> tuple[tuple[Path, str], ...]:
    """(file, text) for the Markdown documents and every docstring / comment of the package and
    the studies."""
    items = [(ROOT / "README.md", (ROOT / "README.md").read_text())]
    items.append((ROOT / "figures" / "README.md", (ROOT / "figures" / "README.md").read_text()))
    items += [(page, page.read_text()) for page in _pages()]
    for folder in ("linsolve", "experiments"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            items += [(path, text) for text in _python_texts(path)]
    return tuple(items)


def _exists(candidate: str, base: Path) -> bool:
    if candidate.startswith(_NOT_IN_REPOSITORY) or _PLACEHOLDER.search(candidate):
        return True
    stripped = re.sub(r"^(\.{1,2}/)+", "", candidate)
    if base.is_relative_to(DOCS) and _is_notebook_page((base / candidate).resolve()):
        return True
    return any(p.exists() for p in (base / candidate, ROOT / candidate, ROOT / stripped))


def repository_paths(text: str) -> list[str]:
    """Repository-looking paths in a text (URLs removed first)."""
    return _PATH.findall(_URL.sub(" ", text))


def test_repository_path_pattern():
    text = "see `docs/theory/index.md`, [x](../api/exact.md) and https://a.org/b/c.py, not a.b.py"
    assert repository_paths(text) == ["docs/theory/index.md", "../api/exact.md"]
    assert _exists("docs/theory/index.md", ROOT) and _exists("../api/exact.md", DOCS / "theory")
    assert not _exists("docs/theory/missing.md", ROOT) and not _exists("experiments/nope.py", ROOT)


def test_every_path_in_docs_and_docstrings_exists():
    """No README, documentation page, docstring or comment points at a file that is not in the
    repository (paths relative to the repository root or to the document)."""
    missing = set()
    for path, text in _scanned():
        for candidate in repository_paths(text):
            if not _exists(candidate, path.parent):
                missing.add(f"{path.relative_to(ROOT)}: {candidate}")
    assert not missing, f"paths to files that are not in the repository: {sorted(missing)}"


def test_no_text_points_at_private_notes():
    found = sorted(
        str(path.relative_to(ROOT))
        for path, text in _scanned()
        if re.search(r"reference\s+notes", text, re.IGNORECASE)
    )
    assert not found, f"texts that point readers at notes outside the repository: {found}"


def test_gallery_shows_every_figure_and_the_hook_publishes_them():
    figures = sorted(p.name for p in (ROOT / "figures").glob("*.png"))
    gallery = (DOCS / "gallery.md").read_text()
    shown = re.findall(r'<img src="\.\./figures/([\w.-]+\.png)"', gallery)
    assert sorted(set(shown)) == figures, "docs/gallery.md and figures/*.png differ"
    for name in set(re.findall(r"linsolve reproduce (\w+)", gallery)):
        assert (ROOT / "experiments" / f"{name}.py").is_file(), name
    spec = importlib.util.spec_from_file_location("gallery_hook", DOCS / "_gallery_hook.py")
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    assert [p.name for p in hook.figure_files(ROOT)] == figures
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text().split("\nplugins:")[0])
    assert "docs/_gallery_hook.py" in config.get("hooks", []), "mkdocs.yml does not register the hook"


def test_every_exact_name_has_a_theory_page():
    """The table "Which page covers which function" of docs/theory/index.md names every public name
    of linsolve.exact, and each page it links exists."""
    text = (DOCS / "theory" / "index.md").read_text()
    table = text.split("## Which page covers which function", 1)[1].split("\n## ", 1)[0]
    names = public_names(importlib.import_module("linsolve.exact"))
    missing = [name for name in names if f"`{name}`" not in table]
    assert not missing, f"no theory page is listed for {missing}"
    for target in _LINK.findall(table):
        assert (DOCS / "theory" / target).is_file(), target
