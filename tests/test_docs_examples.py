"""The examples of the user guide run: every ```python block of ``docs/guide/*.md`` is executed,
the blocks of one page in order in one namespace (a page reads as one session), in a temporary
working directory, with float64 enabled (conftest). A block preceded by a ``<!-- skip-test -->``
line is left out (for examples too slow for the suite; none is at present)."""

import os
import re
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "guide"
SKIP_MARK = "<!-- skip-test -->"
_BLOCK = re.compile(r"^(?P<before>.*?)^```python\n(?P<code>.*?)^```", re.MULTILINE | re.DOTALL)


def python_blocks(text: str) -> list[tuple[str, bool]]:
    """``(code, skipped)`` for every ```python block of a Markdown text, in order; `skipped` when
    the last non-blank line before the block is the skip mark."""
    blocks = []
    pos = 0
    while (match := _BLOCK.search(text, pos)) is not None:
        before = [line for line in match["before"].splitlines() if line.strip()]
        blocks.append((match["code"], bool(before) and before[-1].strip() == SKIP_MARK))
        pos = match.end()
    return blocks


PAGES = sorted(GUIDE.glob("*.md"))


def test_the_guide_has_examples():
    assert PAGES, f"no guide pages under {GUIDE}"
    runnable = {page.name for page in PAGES if any(not s for _, s in python_blocks(page.read_text()))}
    for name in ("exact.md", "simulate.md", "sweep.md", "analysis.md", "tasks.md", "verify.md", "plot.md"):
        assert name in runnable, f"docs/guide/{name} has no runnable ```python example"


def test_block_parser_sees_skip_marks():
    text = "a\n```python\nx = 1\n```\n\n<!-- skip-test -->\n\n```python\ny = 2\n```\n```bash\nls\n```\n"
    assert python_blocks(text) == [("x = 1\n", False), ("y = 2\n", True)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_guide_examples_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": f"guide_{page.stem}"}
    for index, (code, skipped) in enumerate(python_blocks(page.read_text())):
        if skipped:
            continue
        try:
            exec(compile(code, f"{page.name}[block {index}]", "exec"), namespace)
        except Exception as error:  # name the page and block, keep the traceback
            raise AssertionError(f"docs/guide/{page.name}, python block {index} failed: {error!r}") from error
    assert os.getcwd() == str(tmp_path)
