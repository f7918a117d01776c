"""`fingerprint`: a hash of what a point function computes, stored with a sweep so that a resume
never mixes results of two different functions.

The hash covers the function's code (bytecode, constants and names, recursively into nested code
objects), its closure cell values, its defaults and keyword defaults, the globals its code refers
to by name, and the attribute chains it evaluates through linsolve or user modules
(``lns.simulate.gradient_descent``, read from the bytecode). Functions, classes and data defined in
user modules or in linsolve are followed recursively (so editing the body of a helper the point
function calls changes the hash); modules,
builtins and functions of third-party libraries (jax, numpy, ...) enter by their qualified name
only. Arrays are hashed by dtype, shape and bytes, other data by ``repr`` with memory addresses
removed, so the hash is the same in every process that runs the same code on the same Python.
Bytecode differs between Python versions, hence so does the hash.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import dis
import functools
import hashlib
import re
import sys
import sysconfig
import types

import jax
import numpy as np

__all__ = ["fingerprint", "is_library_module"]

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_LIBRARY_DIRS = tuple(
    {
        sysconfig.get_paths()[k]
        for k in ("stdlib", "platstdlib", "purelib", "platlib")
        if k in sysconfig.get_paths()
    }
)


def fingerprint(fn) -> str:
    """Hex SHA-256 of what `fn` computes: code, closure, defaults and referenced globals.

    **Arguments:**

    - `fn`: any callable (function, ``functools.partial``, bound method, jitted function, ...).

    **Returns:** a 64-character hex string, equal in every process for the same code and data.
    """
    hasher = _Hasher()
    hasher.feed(fn)
    return hasher.digest()


@functools.cache
def is_library_module(name: str | None) -> bool:
    """True for the standard library and installed third-party packages (not linsolve, not
    ``__main__``, not modules living outside the interpreter's library folders)."""
    if not name:
        return False
    top = name.split(".")[0]
    if top in ("linsolve", "__main__"):
        return False
    if top in sys.stdlib_module_names or top == "builtins":
        return True
    module = sys.modules.get(top)
    path = getattr(module, "__file__", None)
    if path is None:
        return module is not None and not hasattr(module, "__path__")  # built-in extension
    return path.startswith(_LIBRARY_DIRS) or "site-packages" in path or "dist-packages" in path


def _qualname(obj) -> str:
    return f"{getattr(obj, '__module__', None)}.{getattr(obj, '__qualname__', getattr(obj, '__name__', '?'))}"


def _clean_repr(obj) -> str:
    try:
        text = repr(obj)
    except Exception:  # noqa: BLE001 - a broken __repr__ must not break the sweep
        text = f"<{_qualname(type(obj))} without repr>"
    return _ADDRESS.sub("", text)


class _Hasher:
    """Feeds a canonical, tagged serialisation of objects into one SHA-256."""

    def __init__(self):
        self._hash = hashlib.sha256()
        self._seen: dict[int, int] = {}  # id -> order of first visit (cycles and shared objects)
        self._keep: list = []  # keeps visited objects alive, so their ids stay unique

    def digest(self) -> str:
        return self._hash.hexdigest()

    def _put(self, tag: str, payload: bytes | str = b"") -> None:
        if isinstance(payload, str):
            payload = payload.encode()
        self._hash.update(f"{tag}:{len(payload)}:".encode() + payload)

    def _visit(self, obj) -> bool:
        """True the first time `obj` is seen; later visits hash a back-reference."""
        if id(obj) in self._seen:
            self._put("ref", str(self._seen[id(obj)]))
            return False
        self._seen[id(obj)] = len(self._seen)
        self._keep.append(obj)
        return True

    def feed(self, obj) -> None:  # noqa: C901 - one dispatch table
        if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes)):
            self._put(type(obj).__name__, repr(obj))
        elif isinstance(obj, (np.ndarray, np.generic, jax.Array)):
            if jax.dtypes.issubdtype(obj.dtype, jax.dtypes.prng_key):
                self._put("key", str(obj.dtype))  # typed PRNG keys: their impl, then their bits
                obj = jax.random.key_data(obj)
            array = np.asarray(obj)
            self._put("array", f"{array.dtype.str}{array.shape}")
            self._put("bytes", np.ascontiguousarray(array).tobytes())
        elif isinstance(obj, (list, tuple)) and type(obj) in (list, tuple):
            self._put(type(obj).__name__, str(len(obj)))
            for item in obj:
                self.feed(item)
        elif isinstance(obj, dict) and type(obj) is dict:
            self._put("dict", str(len(obj)))
            for k, v in obj.items():
                self.feed(k)
                self.feed(v)
        elif isinstance(obj, (set, frozenset)):
            self._put("set", str(len(obj)))
            for item in sorted(obj, key=_clean_repr):
                self.feed(item)
        elif isinstance(obj, types.CodeType):
            self._code(obj)
        elif isinstance(obj, types.ModuleType):
            self._module(obj)
        elif isinstance(obj, types.FunctionType):
            self._function(obj)
        elif isinstance(obj, functools.partial):
            self._put("partial")
            self.feed(obj.func)
            self.feed(obj.args)
            self.feed(obj.keywords)
        elif isinstance(obj, types.MethodType):
            self._put("method")
            self.feed(obj.__func__)
            self.feed(obj.__self__)
        elif isinstance(obj, type):
            self._class(obj)
        elif isinstance(obj, (types.BuiltinFunctionType, types.BuiltinMethodType)):
            self._put("builtin", _qualname(obj))
        elif callable(obj) and getattr(obj, "__wrapped__", None) is not None:
            self._put("wrapped", _qualname(type(obj)))  # jax.jit, functools.wraps, ...
            self.feed(obj.__wrapped__)
        else:
            self._data(obj)

    def _data(self, obj) -> None:
        """Pytrees by structure and leaves, dataclasses and user objects by fields, else repr."""
        if not self._visit(obj):
            return
        leaves, treedef = jax.tree_util.tree_flatten(obj)
        if treedef.num_nodes > 1 or treedef.num_leaves != 1:
            self._put("pytree", _clean_repr(treedef))
            for leaf in leaves:
                self.feed(leaf)
        elif dataclasses.is_dataclass(obj):
            self._put("dataclass", _qualname(type(obj)))
            for f in dataclasses.fields(obj):
                self._put("field", f.name)
                self.feed(getattr(obj, f.name))
        elif hasattr(obj, "__dict__") and not is_library_module(type(obj).__module__):
            self._put("object", _qualname(type(obj)))
            self._class(type(obj))
            self.feed(dict(sorted(vars(obj).items())))
        else:
            self._put("repr", f"{_qualname(type(obj))}={_clean_repr(obj)}")

    def _code(self, code: types.CodeType) -> None:
        self._put("code", code.co_code)
        self._put(
            "signature",
            repr((code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount, code.co_flags)),
        )
        self._put("names", repr((code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars)))
        for const in code.co_consts:
            self.feed(const)

    def _function(self, fn: types.FunctionType) -> None:
        if not self._visit(fn):
            return
        if is_library_module(fn.__module__):
            # By name, plus the values a library closure holds (``optax.sgd(0.1)``'s rate).
            self._put("library-function", _qualname(fn))
            self._cells(fn)
            return
        self._put("function")
        self._code(fn.__code__)
        self.feed(fn.__defaults__)
        self.feed(fn.__kwdefaults__)
        self._cells(fn)
        for name in sorted(set(_names(fn.__code__))):
            if name in fn.__globals__:
                self._put("global", name)
                self.feed(fn.__globals__[name])
            elif hasattr(builtins, name):
                self._put("builtin-name", name)
        cells = dict(zip(fn.__code__.co_freevars, fn.__closure__ or ()))
        for kind, root, attrs in sorted(set(_chains(fn.__code__))):
            if kind == "LOAD_GLOBAL" and root in fn.__globals__:
                self._chain(fn.__globals__[root], attrs)
            elif kind == "LOAD_DEREF" and root in cells:
                with contextlib.suppress(ValueError):  # an empty cell
                    self._chain(cells[root].cell_contents, attrs)

    def _cells(self, fn: types.FunctionType) -> None:
        for cell in fn.__closure__ or ():
            try:
                self.feed(cell.cell_contents)
            except ValueError:  # an empty cell (a name assigned after the closure was made)
                self._put("empty-cell")

    def _chain(self, obj, attrs: tuple) -> None:
        """Follow ``module.attr.attr`` as the code does, while the object is a linsolve or user
        module (``lns.simulate.gradient_descent`` reaches ``gradient_descent``)."""
        for attr in attrs:
            if not isinstance(obj, types.ModuleType) or is_library_module(obj.__name__):
                return
            self._put("attribute", f"{obj.__name__}.{attr}")
            try:
                obj = getattr(obj, attr)
            except AttributeError:
                self._put("missing")
                return
            self.feed(obj)

    def _module(self, module: types.ModuleType) -> None:
        """A module by name (its attributes enter through the code's attribute chains)."""
        self._put("module", module.__name__)

    def _class(self, cls: type) -> None:
        """A class by qualified name; classes of linsolve and user modules also by their methods."""
        self._put("class", _qualname(cls))
        if is_library_module(cls.__module__) or not self._visit(cls):
            return
        for name, member in sorted(vars(cls).items()):
            if isinstance(member, (staticmethod, classmethod)):
                member = member.__func__
            elif isinstance(member, property):
                member = member.fget
            if isinstance(member, types.FunctionType):
                self._put("member", name)
                self.feed(member)


def _names(code: types.CodeType):
    """Names the code (and its nested code objects) loads as globals or attributes."""
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _names(const)


_LOADS = ("LOAD_GLOBAL", "LOAD_DEREF", "LOAD_NAME", "LOAD_CLASSDEREF")


def _chains(code: types.CodeType):
    """``(load kind, root name, attribute names)`` of every ``root.a.b`` the code (and its nested
    code objects) evaluates, read from the bytecode."""
    instructions = list(dis.get_instructions(code))
    for i, ins in enumerate(instructions):
        if ins.opname not in _LOADS or not isinstance(ins.argval, str):
            continue
        attrs = []
        for nxt in instructions[i + 1 :]:
            if nxt.opname not in ("LOAD_ATTR", "LOAD_METHOD"):
                break
            attrs.append(nxt.argval)
        if attrs:
            yield ("LOAD_GLOBAL" if ins.opname == "LOAD_NAME" else ins.opname), ins.argval, tuple(attrs)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _chains(const)
