"""The built-in explorers by name, and the lookup that names the choices on a bad name."""

from __future__ import annotations

from ._lazy_rich import LAZY_RICH
from ._spec import Explorer
from ._stages import SAXE_STAGES
from ._width_phase import WIDTH_PHASE

__all__ = ["EXPLORERS", "get_explorer", "list_explorers"]

#: The built-in explorers, ``{name: Explorer}``: ``saxe-stages``, ``lazy-rich``, ``width-phase``.
EXPLORERS: dict[str, Explorer] = {e.name: e for e in (SAXE_STAGES, LAZY_RICH, WIDTH_PHASE)}


def list_explorers() -> dict[str, str]:
    """``{name: title}`` of every built-in explorer, in a fixed order.

    **Returns:** a dict from the names ``linsolve explore NAME`` accepts to one-line titles.
    """
    return {name: e.title for name, e in EXPLORERS.items()}


def get_explorer(name) -> Explorer:
    """The built-in :class:`Explorer` called `name`.

    **Arguments:** `name`: one of ``list_explorers()`` (an :class:`Explorer` is passed through).

    **Returns:** the :class:`Explorer`. Raises ValueError naming `name` and the choices otherwise.
    """
    if isinstance(name, Explorer):
        return name
    if not isinstance(name, str) or name not in EXPLORERS:
        raise ValueError(f"`name` must be one of {sorted(EXPLORERS)}; got {name!r}.")
    return EXPLORERS[name]
