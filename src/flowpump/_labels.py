"""Readable names for user callables, used in labels, errors, metrics and pictures."""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from typing import Any


def _code_of(fn: Any) -> Any:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return getattr(inspect.unwrap(fn), "__code__", None)


def short_name(fn: Callable[..., Any]) -> str:
    """``parse`` for a function, ``<lambda> at app.py:12`` for a lambda."""
    name = getattr(fn, "__name__", None)
    if isinstance(fn, functools.partial):
        return f"partial({short_name(fn.func)})"
    if name is None:
        return type(fn).__name__
    if name == "<lambda>":
        code = _code_of(fn)
        if code is not None:
            return f"<lambda> at {os.path.basename(code.co_filename)}:{code.co_firstlineno}"
    return str(name)


def long_name(fn: Callable[..., Any]) -> str:
    """``app.parse (app.py:12)``: the form used in error messages."""
    module = getattr(fn, "__module__", None) or "?"
    qualname = getattr(fn, "__qualname__", None) or short_name(fn)
    code = _code_of(fn)
    where = f" ({os.path.basename(code.co_filename)}:{code.co_firstlineno})" if code else ""
    return f"{module}.{qualname}{where}"
