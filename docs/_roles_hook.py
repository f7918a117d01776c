"""MkDocs hook: Sphinx cross-reference roles in docstrings become links into the API reference.

The docstrings are Markdown, but many cross-reference with Sphinx roles (``:func:`saxe_mode```,
``:class:`~linsolve.Task```, ``:data:`CONVERGED```). Rendered as they are, the role name shows as
text before the code span. This hook runs on every rendered page (``on_page_content``): a role
followed by a code span becomes that code span, linked to the API-reference entry of the name
when exactly one documented object (a ``::: dotted.path`` block under ``docs/api/``) ends with it.
A leading ``~`` shows only the last component, as in Sphinx. Names with no unique entry stay plain
code.
"""

from __future__ import annotations

import html
import pathlib
import re

from mkdocs.utils import get_relative_url

DOCS = pathlib.Path(__file__).resolve().parent
_DIRECTIVE = re.compile(r"^:::\s+(\S+)\s*$", re.MULTILINE)
_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|obj|exc):<code>([^<]*)</code>")

_ENTRIES: dict[str, str] = {}  # dotted path -> page URL of its API-reference entry


def on_config(config):
    """Collect every documented dotted path and the page (its site URL) that documents it."""
    _ENTRIES.clear()
    for page in sorted((DOCS / "api").glob("*.md")):
        url = f"api/{page.stem}/"
        for path in _DIRECTIVE.findall(page.read_text()):
            _ENTRIES[path] = url
    return config


def resolve(name: str) -> str | None:
    """The documented dotted path that `name` names: itself, or the one entry ending in
    ``.name`` / ``.last_component`` (None when there is none or several)."""
    if name in _ENTRIES:
        return name
    for suffix in (name, name.rsplit(".", 1)[-1]):
        matches = [path for path in _ENTRIES if path.endswith("." + suffix)]
        if len(matches) == 1:
            return matches[0]
    return None


def _link(match: re.Match, page_url: str) -> str:
    written = html.unescape(match.group(1)).strip()
    name = written.lstrip("~.").removesuffix("()")
    shown = name.rsplit(".", 1)[-1] if written.startswith("~") else name
    code = f"<code>{html.escape(shown)}</code>"
    target = resolve(name)
    if target is None:
        return code
    href = get_relative_url(_ENTRIES[target], page_url) + "#" + target
    return f'<a href="{html.escape(href)}">{code}</a>'


def on_page_content(content: str, page, config, files) -> str:
    return _ROLE.sub(lambda m: _link(m, page.url or "."), content)
